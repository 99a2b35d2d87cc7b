"""Fixtures for the vision tests: the shipped models and a real face photograph.

The face is scikit-image's `astronaut` sample (Eileen Collins, NASA, public domain), read from
the installed scikit-image package: nothing is downloaded.
"""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from edge.vision.runtime import ModelSet


@pytest.fixture(scope="session")
def models() -> ModelSet:
    return ModelSet.load()


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """512×512 RGB photograph with one frontal face (box about x 178-272, y 81-175)."""
    img = data.astronaut()
    img.setflags(write=False)
    return img


@pytest.fixture(scope="session")
def head(astronaut: np.ndarray) -> np.ndarray:
    """A 300×300 head-and-shoulders crop of the astronaut photograph."""
    return np.ascontiguousarray(astronaut[20:320, 80:380])
