"""Score single images and show each passive model's raw output, the crop it used and the
final ensemble score: what a bank checks when its model behaves differently on the terminal.

    python -m modeltools.eval.score IMAGE... [--bundle BANK.tar] [--keys DIR] [--json]

For each image: the detector's face box, then for every ensemble member its crop (frame
pixels x0 y0 x1 y1, exclusive ends; outside the frame means replicated border), crop mode and
interpolation, every raw output tensor, the probabilities after its activation and its bona
fide probability; then the ensemble score (0-100) the verdict would combine with planarity.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from modeltools.eval import models as model_options


def score_image(models, frame: np.ndarray) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Everything the passive models say about the one face in an RGB frame."""
    from edge.vision import classifier, pipeline

    faces = pipeline.detect(models, frame)
    if len(faces) != 1:
        return {"faces": len(faces), "error": "needs exactly one face"}
    face = faces[0]
    members = []
    for m in models.passive:
        spec = m.entry.classifier
        raw = m.run(classifier.to_input(classifier.crop(frame, face.box, spec), spec))
        chosen = raw[spec.output_name] if spec.output_name else next(iter(raw.values()))
        members.append(
            {
                "model": m.entry.label,
                "crop": spec.crop,
                "interpolation": spec.interpolation,
                "crop_box": list(classifier.crop_box(frame.shape, face.box, spec)),
                "raw": {k: np.asarray(v).reshape(-1).round(6).tolist() for k, v in raw.items()},
                "probabilities": classifier.probabilities(chosen, spec).round(6).tolist(),
                "bona_fide": round(classifier.bona_fide(chosen, spec), 6),
            }
        )
    ensemble = classifier.ensemble([m["bona_fide"] for m in members])
    return {
        "faces": 1,
        "face_box": [round(v, 1) for v in face.box],
        "members": members,
        "ensemble_score": None if ensemble is None else round(100 * ensemble),
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", type=Path, nargs="+")
    ap.add_argument("--json", action="store_true", help="one JSON document instead of text")
    model_options.add_arguments(ap)
    args = ap.parse_args(argv)
    models = model_options.load(args)
    results = []
    for path in args.images:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SystemExit(f"{path}: not an image OpenCV can read")
        results.append({"image": str(path), **score_image(models, bgr[..., ::-1].copy())})
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
    else:
        for r in results:
            print(f"{r['image']}: faces {r['faces']}, box {r.get('face_box')}")
            for m in r.get("members", []):
                print(
                    f"  {m['model']}: crop {m['crop']} {m['crop_box']} ({m['interpolation']}), "
                    f"raw {m['raw']}, bona fide {m['bona_fide']}"
                )
            print(f"  ensemble score {r.get('ensemble_score')}  {r.get('error', '')}".rstrip())
    return results


if __name__ == "__main__":
    main()
