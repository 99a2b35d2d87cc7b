"""Tier (b): how the passive ensemble's scores move under simulated attack artefacts.

    python -m modeltools.eval.robustness [--n 40] [--baseline models/eval/robustness-baseline.json]
                                     [--out report.json]

Each artefact of `modeltools.train.attacks` (print, screen, halftone, moiré, gamut, glare,
recapture blur) is applied at three strengths to scenes drawn with a seed the training never
used, and the ensemble scores them. Reported per artefact and strength: mean score (0-100) and
the share scored at or above the threshold. With `--baseline` it prints the drift against an
earlier model version's report, which is what this tier is for.

This is ROBUSTNESS ON SIMULATIONS, not APCER: the simulator is the one the baseline was
trained on, so low scores here show the model learned the simulator, not that it stops real
prints or screens. Only tier (c) on real labelled presentations measures APCER.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from edge.vision.blazeface import Face
from edge.vision.pipeline import passive_scores
from edge.vision.runtime import ModelSet
from modeltools.train import attacks, datagen

EVAL_SEED = 4_242_001  # never used by training (models/train/passive.py)
STRENGTHS = (0.5, 1.0, 1.5)
SCENE_EXPAND = 1.4  # a scene is the face box grown by this much


def score(models: ModelSet, scene: np.ndarray) -> float:
    """Ensemble bona fide score (0-100) of a scene taken as an expanded face crop."""
    side = scene.shape[0] / SCENE_EXPAND
    c = scene.shape[0] / 2
    face = Face(
        box=(c - side / 2, c - side / 2, c + side / 2, c + side / 2),
        score=1.0,
        keypoints=np.zeros((6, 2)),
    )
    return 100 * float(np.mean(passive_scores(models, scene, face)))


def run(models: ModelSet, n: int, threshold: float = 70) -> dict:
    rng = np.random.default_rng(EVAL_SEED)
    images = datagen.sources()
    scenes = [datagen.scene(rng, images) for _ in range(n)]
    bona = [score(models, attacks.camera(s, rng)) for s in scenes]
    rows = {"bona_fide": {"mean": float(np.mean(bona)), "at_or_above": _share(bona, threshold)}}
    for name, attack in attacks.ATTACKS.items():
        for strength in STRENGTHS:
            values = [score(models, attack(s, rng, strength)) for s in scenes]
            rows[f"{name}@{strength}"] = {
                "mean": float(np.mean(values)),
                "at_or_above": _share(values, threshold),
            }
    return {
        "label": "robustness on simulated artefacts (NOT APCER)",
        "models": models.versions,
        "n": n,
        "threshold": threshold,
        "seed": EVAL_SEED,
        "rows": rows,
    }


def _share(values: list[float], threshold: float) -> float:
    return float(np.mean(np.asarray(values) >= threshold))


def drift(current: dict, baseline: dict) -> dict[str, float]:
    """Change of mean score per row since the baseline report (rows in both only)."""
    return {
        k: current["rows"][k]["mean"] - v["mean"]
        for k, v in baseline["rows"].items()
        if k in current["rows"]
    }


def to_markdown(report: dict, changes: dict[str, float] | None = None) -> str:
    lines = [
        f"Robustness on simulated artefacts — NOT APCER (n={report['n']} per row, "
        f"threshold {report['threshold']:g}, seed {report['seed']})",
        "",
        "| row | mean score | share >= threshold |" + (" drift |" if changes else ""),
        "| --- | ---: | ---: |" + (" ---: |" if changes else ""),
    ]
    for k, v in report["rows"].items():
        d = f" {changes[k]:+.1f} |" if changes and k in changes else (" |" if changes else "")
        lines.append(f"| {k} | {v['mean']:.1f} | {v['at_or_above']:.0%} |{d}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--baseline", type=Path)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    report = run(ModelSet.load(), args.n)
    changes = drift(report, json.loads(args.baseline.read_text())) if args.baseline else None
    print(to_markdown(report, changes))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
