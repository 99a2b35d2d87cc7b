"""The evaluation tiers: ISO/IEC 30107-3 figures, the report on a labelled folder, drift."""

from __future__ import annotations

import itertools
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.vision.runtime import ModelSet
from modeltools.eval import iso30107, robustness
from modeltools.train import attacks

BONA = np.array([90.0, 80.0, 60.0, 95.0])
ATTACKS = {"print": np.array([10.0, 75.0, 20.0]), "screen": np.array([5.0, 5.0])}


def test_apcer_per_species_and_bpcer_at_the_threshold() -> None:
    report = iso30107.compute(BONA, ATTACKS, 70, {"m": "1"})
    assert report.apcer == {"print": pytest.approx(1 / 3), "screen": 0.0}
    assert report.apcer_max == pytest.approx(1 / 3)
    assert report.bpcer == 0.25  # the 60
    # APCER_max reaches 0 only from threshold 80 up, where the 60 is still rejected.
    assert report.bpcer20 == report.bpcer100 == 0.25
    points = iso30107.det_points(BONA, ATTACKS)
    assert points[0] == (1.0, 0.0) and points[-1] == (0.0, 1.0)
    assert all(a1 >= a2 and b1 <= b2 for (a1, b1), (a2, b2) in itertools.pairwise(points))


def _write(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def test_report_on_a_labelled_folder(astronaut: np.ndarray, tmp_path: Path) -> None:
    rng = np.random.default_rng(77)
    for i in range(3):
        _write(tmp_path / "data/bona_fide" / f"{i}.png", attacks.camera(astronaut, rng))
        _write(tmp_path / "data/attack/print" / f"{i}.png", attacks.print_attack(astronaut, rng))
        _write(tmp_path / "data/attack/screen" / f"{i}.jpg", attacks.screen_attack(astronaut, rng))
    _write(tmp_path / "data/bona_fide/wall.png", np.full((480, 640, 3), 128, np.uint8))
    out = tmp_path / "report"
    report = iso30107.main([str(tmp_path / "data"), "--out", str(out)])
    # Unscored images (the wall; a replay too blurred to detect) are reported, not hidden.
    assert report.bona_fide == 3 and report.unscored["bona_fide"] == 1
    for species in ("print", "screen"):
        assert report.attacks[species] + report.unscored.get(species, 0) == 3
    assert report.apcer == {"print": 0.0, "screen": 0.0} and report.bpcer == 0.0
    text = (out / "report.md").read_text()
    assert "**0.00%**" in text and "Not scored" in text
    assert ET.parse(out / "det.svg").getroot().tag.endswith("svg")
    assert json.loads((out / "report.json").read_text())["threshold"] == 70


def test_robustness_is_labelled_and_tracks_drift(models: ModelSet) -> None:
    report = robustness.run(models, n=3)
    assert "NOT APCER" in report["label"]
    rows = report["rows"]
    assert len(rows) == 1 + 7 * 3
    assert rows["bona_fide"]["mean"] > rows["print@1.0"]["mean"]
    older = json.loads(json.dumps(report))
    older["rows"]["print@1.0"]["mean"] += 12.5
    changes = robustness.drift(report, older)
    assert changes["print@1.0"] == pytest.approx(-12.5)
    assert changes["bona_fide"] == 0.0
    assert "+0.0" in robustness.to_markdown(report, changes)
