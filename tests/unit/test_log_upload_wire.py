"""The log-upload wire (common.wire.log_upload): plan, sign, check, reassemble."""

from __future__ import annotations

import secrets

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from common.wire import log_upload as wire


def test_plan_round_trips_and_reassembles_only_the_right_bytes() -> None:
    data = secrets.token_bytes(5000)
    m = wire.plan("u1", "T1", data, 1024)
    assert wire.Manifest.parse(m.to_bytes()) == m and len(m.chunks) == 5
    pieces = [wire.chunk(data, m, i) for i in range(5)]
    assert wire.assemble(m, pieces) == data
    with pytest.raises(wire.UploadRefused) as err:
        wire.assemble(m, [*pieces[:4], pieces[4][:-1] + b"x"])
    assert err.value.reason == "chunk_digest_mismatch"
    with pytest.raises(wire.UploadRefused) as err:
        wire.assemble(m, pieces[:4])
    assert err.value.reason == "incomplete"


def test_a_chunk_signature_binds_upload_terminal_and_place() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    digest = wire.sha256(b"chunk")
    sig = wire.sign(key, wire.chunk_message("u1", "T1", 0, digest))
    wire.verify(key.public_key(), wire.chunk_message("u1", "T1", 0, digest), sig)
    for moved in (("u2", "T1", 0), ("u1", "T2", 0), ("u1", "T1", 1)):
        with pytest.raises(wire.UploadRefused) as err:
            wire.verify(key.public_key(), wire.chunk_message(*moved, digest), sig)
        assert err.value.reason == "bad_signature"


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b'{"upload_id": "u", "terminal_id": "T", "size": 10, "sha256": "00", '
        b'"chunk_size": 1024, "chunks": []}',
        b'{"upload_id": "u", "terminal_id": "T", "size": 10, "sha256": "' + b"0" * 64 + b'", '
        b'"chunk_size": 10, "chunks": ["' + b"0" * 64 + b'"]}',
    ],
)
def test_a_bad_manifest_is_refused_by_name(raw: bytes) -> None:
    with pytest.raises(wire.UploadRefused) as err:
        wire.Manifest.parse(raw)
    assert err.value.reason == "bad_manifest"
