"""The passive baseline's data generator and trainer are deterministic, and the shipped model
is exactly what they describe (its graph is the features graph plus the trained head)."""

from __future__ import annotations

import numpy as np
import onnx

from models.registry import load_verified
from modeltools.train import datagen, features, passive


def test_data_generator_is_seeded_and_labelled() -> None:
    a, ya, ka = datagen.dataset(seed=5, n=6)
    b, yb, kb = datagen.dataset(seed=5, n=6)
    c, _, _ = datagen.dataset(seed=6, n=6)
    assert np.array_equal(a, b) and ya.tolist() == yb.tolist() and ka == kb
    assert not np.array_equal(a, c)
    assert a.shape == (12, features.SIZE, features.SIZE, 3) and a.dtype == np.uint8
    assert ya.tolist() == [1, 0] * 6
    assert set(ka) == {"bona_fide", "print", "screen"}


def test_small_training_run_is_reproducible_and_separates_its_data() -> None:
    images, y, _ = datagen.dataset(seed=9, n=40)
    f = passive.extract(images)
    head1, head2 = passive.fit(f, y), passive.fit(f, y)
    assert all(np.array_equal(head1[k], head2[k]) for k in head1)
    model = features.build(head1).SerializeToString()
    assert model == features.build(head2).SerializeToString()
    assert passive.accuracy(model, images, y) > 0.9


def test_shipped_baseline_is_the_features_graph_plus_a_head() -> None:
    shipped = onnx.load_from_string(load_verified("cuntong-passive-baseline").data)
    rebuilt = features.build(
        {k: np.zeros(1, np.float32) for k in ("mu", "sd", "W1", "b1", "W2", "b2")}
    )
    assert [n.op_type for n in shipped.graph.node] == [n.op_type for n in rebuilt.graph.node]
    assert shipped.graph.output[0].name == "logits"
