"""Tier (c): the ISO/IEC 30107-3 presentation attack detection report on a labelled folder.

    python -m modeltools.eval.iso30107 FOLDER [--threshold 70] [--out DIR]
                                       [--bundle BANK.tar] [--keys DIR]

FOLDER holds `bona_fide/*.{png,jpg}` and `attack/<PAI species>/*.{png,jpg}` (for example
`attack/print_a4`, `attack/phone_replay`). Each image goes through the terminal pipeline
(detector, crop, passive ensemble; no active challenge, which needs video). Reported:
APCER per PAI species and its maximum, BPCER, both at the policy threshold; BPCER20 and
BPCER100 (BPCER where APCER_max is 5% / 1%); the images the pipeline could not score (no
usable face: ISO 30107-3's failure to acquire, reported, not hidden); and a DET curve as SVG.
`--bundle` evaluates a bank's model bundle instead of the installed models, trusting the keys
in `--keys` (`modeltools.eval.models`). Still images score the passive ensemble only: the
planarity check needs the head turn, so it is not in this report (`modeltools.eval.planarity`).

An attack is "accepted" when its score (0-100) reaches the threshold; a bona fide
presentation is "rejected" when its score falls below it.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist

import cv2
import numpy as np

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}


def apcer(attack_scores: np.ndarray, threshold: float) -> float:
    """Share of attack presentations scored as bona fide (score >= threshold)."""
    return float(np.mean(np.asarray(attack_scores) >= threshold)) if len(attack_scores) else 0.0


def bpcer(bona_scores: np.ndarray, threshold: float) -> float:
    """Share of bona fide presentations scored as attacks (score < threshold)."""
    return float(np.mean(np.asarray(bona_scores) < threshold)) if len(bona_scores) else 0.0


def bpcer_at_apcer(bona: np.ndarray, attacks: dict[str, np.ndarray], target: float) -> float:
    """BPCER at the lowest threshold whose worst-species APCER is at most `target`."""
    for t in _thresholds(bona, attacks):
        if max(apcer(s, t) for s in attacks.values()) <= target:
            return bpcer(bona, t)
    return 1.0


def det_points(bona: np.ndarray, attacks: dict[str, np.ndarray]) -> list[tuple[float, float]]:
    """(APCER_max, BPCER) for every distinct threshold, from lenient to strict."""
    return [
        (max(apcer(s, t) for s in attacks.values()), bpcer(bona, t))
        for t in _thresholds(bona, attacks)
    ]


def _thresholds(bona: np.ndarray, attacks: dict[str, np.ndarray]) -> list[float]:
    everything = np.concatenate(
        [np.asarray(bona, float), *[np.asarray(a, float) for a in attacks.values()]]
    )
    return sorted({*everything.tolist(), float(everything.max()) + 1})


def det_svg(points: list[tuple[float, float]], threshold_point: tuple[float, float]) -> str:
    """A DET plot (both axes on the normal deviate scale, 0.1%-50%) as standalone SVG."""
    nd = NormalDist()
    lo, hi = nd.inv_cdf(0.001), nd.inv_cdf(0.5)
    size, pad = 360, 50

    def pos(rate: float) -> float:
        z = nd.inv_cdf(min(max(rate, 0.001), 0.5))
        return pad + (z - lo) / (hi - lo) * size

    def xy(p: tuple[float, float]) -> tuple[float, float]:
        return pos(p[0]), pad + size - (pos(p[1]) - pad)

    ticks = [0.001, 0.01, 0.05, 0.2, 0.5]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size + 2 * pad}" '
        f'height="{size + 2 * pad}" font-family="sans-serif" font-size="11">',
        f'<rect x="{pad}" y="{pad}" width="{size}" height="{size}" fill="none" stroke="#000"/>',
    ]
    for t in ticks:
        x, y = xy((t, t))
        parts.append(
            f'<line x1="{x:.1f}" y1="{pad}" x2="{x:.1f}" y2="{pad + size}" stroke="#ddd"/>'
        )
        parts.append(
            f'<line x1="{pad}" y1="{y:.1f}" x2="{pad + size}" y2="{y:.1f}" stroke="#ddd"/>'
        )
        parts.append(f'<text x="{x:.1f}" y="{pad + size + 15}" text-anchor="middle">{t:.1%}</text>')
        parts.append(f'<text x="{pad - 5}" y="{y + 4:.1f}" text-anchor="end">{t:.1%}</text>')
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in map(xy, points))
    parts.append(f'<polyline points="{path}" fill="none" stroke="#c00" stroke-width="2"/>')
    tx, ty = xy(threshold_point)
    parts.append(f'<circle cx="{tx:.1f}" cy="{ty:.1f}" r="4" fill="#00c"/>')
    parts.append(
        f'<text x="{pad + size / 2}" y="{pad + size + 35}" text-anchor="middle">'
        "APCER (worst PAI species)</text>"
    )
    parts.append(
        f'<text x="15" y="{pad + size / 2}" transform="rotate(-90 15 {pad + size / 2})" '
        'text-anchor="middle">BPCER</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


@dataclass
class Report:
    """Every figure of the report; `to_markdown` is what a bank files."""

    threshold: float
    models: dict[str, str]
    bona_fide: int
    attacks: dict[str, int]
    apcer: dict[str, float]
    bpcer: float
    bpcer20: float
    bpcer100: float
    unscored: dict[str, int] = field(default_factory=dict)

    @property
    def apcer_max(self) -> float:
        return max(self.apcer.values(), default=0.0)

    def to_markdown(self) -> str:
        lines = [
            "# ISO/IEC 30107-3 presentation attack detection report",
            "",
            f"Models: {', '.join(f'{k}@{v}' for k, v in sorted(self.models.items()))}",
            f"Threshold: {self.threshold:g} (score 0-100; attack accepted when score >= threshold)",
            "",
            "| PAI species | presentations | APCER |",
            "| --- | ---: | ---: |",
        ]
        lines += [f"| {k} | {self.attacks[k]} | {v:.2%} |" for k, v in sorted(self.apcer.items())]
        lines += [
            f"| **max** | {sum(self.attacks.values())} | **{self.apcer_max:.2%}** |",
            "",
            f"BPCER at the threshold: {self.bpcer:.2%} ({self.bona_fide} bona fide presentations)",
            f"BPCER20 (APCER_max <= 5%): {self.bpcer20:.2%}; BPCER100 (<= 1%): {self.bpcer100:.2%}",
            "",
            "Not scored (no usable face; counted as failures to acquire, not in the rates above): "
            + (", ".join(f"{k} {v}" for k, v in sorted(self.unscored.items())) or "none"),
            "",
            "![DET curve](det.svg)",
            "",
        ]
        return "\n".join(lines)


def compute(
    bona: np.ndarray, attacks: dict[str, np.ndarray], threshold: float, models: dict[str, str]
) -> Report:
    return Report(
        threshold=threshold,
        models=models,
        bona_fide=len(bona),
        attacks={k: len(v) for k, v in attacks.items()},
        apcer={k: apcer(v, threshold) for k, v in attacks.items()},
        bpcer=bpcer(bona, threshold),
        bpcer20=bpcer_at_apcer(bona, attacks, 0.05),
        bpcer100=bpcer_at_apcer(bona, attacks, 0.01),
    )


def score_folder(folder: Path, models) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, int]]:
    """Scores (0-100) of every image under the folder's labelled sub-folders."""
    from edge.vision import pipeline  # the terminal pipeline, unchanged

    groups = {"bona_fide": folder / "bona_fide"}
    groups |= {p.name: p for p in sorted((folder / "attack").iterdir()) if p.is_dir()}
    scores: dict[str, list[float]] = {k: [] for k in groups}
    unscored: dict[str, int] = {}
    for label, path in groups.items():
        for f in sorted(path.iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
            result = pipeline.analyze(
                models, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), with_landmarks=False
            )
            if result.passive is None:
                unscored[label] = unscored.get(label, 0) + 1
            else:
                scores[label].append(round(100 * result.passive))
    bona = np.array(scores.pop("bona_fide"), float)
    return bona, {k: np.array(v, float) for k, v in scores.items()}, unscored


def main(argv: list[str] | None = None) -> Report:
    from modeltools.eval import models as model_options

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--threshold", type=float, default=70)
    ap.add_argument("--out", type=Path, default=Path("pad-report"))
    model_options.add_arguments(ap)
    args = ap.parse_args(argv)
    models = model_options.load(args)
    bona, attacks, unscored = score_folder(args.folder, models)
    if not len(bona) or not attacks:
        raise SystemExit("need scored bona fide images and at least one attack species")
    report = compute(bona, attacks, args.threshold, models.versions)
    report.unscored = unscored
    args.out.mkdir(parents=True, exist_ok=True)
    at = (report.apcer_max, report.bpcer)
    (args.out / "det.svg").write_text(det_svg(det_points(bona, attacks), at))
    (args.out / "report.md").write_text(report.to_markdown())
    (args.out / "report.json").write_text(json.dumps(report.__dict__, indent=2) + "\n")
    print(report.to_markdown())
    return report


if __name__ == "__main__":
    main()
