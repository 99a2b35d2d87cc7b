"""Signed, replay-proof commands; event MACs; the crypto-suite switch."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from common import suite as suite_lib
from common.errors import ConfigError
from common.settings import CloudSettings, load
from common.suite import Suite
from common.wire.commands import (
    MAX_TTL,
    Command,
    ReplayCache,
    event_tag,
    event_tag_valid,
    sign_command,
    verify_command,
)
from provisioning.errors import CommandRefused

NOW = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)
KEY = ed25519.Ed25519PrivateKey.generate()


def command(
    cid: str = "c1",
    tid: str = "T1",
    ttl: dt.timedelta = dt.timedelta(minutes=5),
    issued: dt.datetime = NOW,
    **args: object,
) -> Command:
    return Command(cid, tid, "reboot", args or {"delay_s": 5}, issued, issued + ttl)


def refused(
    raw: bytes,
    now: dt.datetime = NOW,
    cache: ReplayCache | None = None,
    key: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | None = None,
) -> str:
    with pytest.raises(CommandRefused) as err:
        verify_command(key or KEY.public_key(), raw, "T1", now, cache or ReplayCache())
    return err.value.reason


def test_valid_command_accepted_once() -> None:
    raw = sign_command(KEY, command(reason="调试"))
    cache = ReplayCache()
    got = verify_command(KEY.public_key(), raw, "T1", NOW, cache)
    assert (got.id, got.name, dict(got.args)) == ("c1", "reboot", {"reason": "调试"})
    assert refused(raw, NOW + dt.timedelta(seconds=1), cache) == "replayed"


def test_tampered_forged_and_misdirected_commands_refused() -> None:
    raw = sign_command(KEY, command())
    obj = json.loads(raw)
    obj["args"]["delay_s"] = 0
    assert refused(json.dumps(obj).encode()) == "bad_signature"
    obj = json.loads(raw)
    obj["exp"] += 3_600_000  # stretch the expiry
    assert refused(json.dumps(obj).encode()) == "bad_signature"
    forged = sign_command(ed25519.Ed25519PrivateKey.generate(), command())
    assert refused(forged) == "bad_signature"
    assert refused(sign_command(KEY, command(tid="T2"))) == "wrong_terminal"
    with pytest.raises(CommandRefused) as err:  # a signed "reboot" under the "wipe" topic
        verify_command(KEY.public_key(), raw, "T1", NOW, ReplayCache(), topic_name="wipe")
    assert err.value.reason == "wrong_name"
    assert refused(b"\x00garbage") == "malformed"
    assert refused(b'{"v": 1, "id": "x"}') == "malformed"


def test_command_time_window() -> None:
    raw = sign_command(KEY, command())
    assert refused(raw, NOW + dt.timedelta(minutes=5)) == "expired"
    assert refused(raw, NOW - dt.timedelta(minutes=3)) == "not_yet_valid"
    assert refused(sign_command(KEY, command(ttl=MAX_TTL * 2))) == "ttl_too_long"


def test_replay_cache_is_bounded_and_fails_closed() -> None:
    cache = ReplayCache(capacity=3)
    for i in range(3):
        verify_command(KEY.public_key(), sign_command(KEY, command(f"c{i}")), "T1", NOW, cache)
    assert refused(sign_command(KEY, command("c3")), NOW, cache) == "replay_cache_full"
    later = NOW + dt.timedelta(minutes=6)  # the first three have expired: room again
    verify_command(
        KEY.public_key(), sign_command(KEY, command("c3", issued=later)), "T1", later, cache
    )
    assert len(cache) == 1


def test_ecdsa_p256_command_key() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    raw = sign_command(key, command())
    assert verify_command(key.public_key(), raw, "T1", NOW, ReplayCache()).id == "c1"
    assert refused(raw, key=KEY.public_key()) == "bad_signature"


@pytest.mark.parametrize("suite", list(Suite))
def test_event_mac_detects_tampering(suite: Suite) -> None:
    key = suite_lib.derive_key(suite, b"m" * 32, "event-mac:T1")
    payload = b'{"kind":"event","tid":"T1","type":"withdrawal","data":{"amount":100}}'
    tag = event_tag(suite, key, payload)
    assert tag.startswith("hmac-sha256:" if suite is Suite.STANDARD else "hmac-sm3:")
    assert event_tag_valid(key, payload, tag)
    assert not event_tag_valid(key, payload.replace(b"100", b"900"), tag)
    assert not event_tag_valid(key, payload, None)
    assert not event_tag_valid(b"k" * 32, payload, tag)
    assert not event_tag_valid(key, payload, tag, accepted=frozenset(set(Suite) - {suite}))


def test_sm_suite_uses_national_algorithms() -> None:
    # GB/T 32905 test vector for SM3("abc").
    assert suite_lib.digest(Suite.SM, b"abc").hex() == (
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    )
    assert suite_lib.digest(Suite.STANDARD, b"abc").hex().startswith("ba7816bf")
    assert suite_lib.key_bytes(Suite.SM) == 16 and suite_lib.key_bytes(Suite.STANDARD) == 32


@pytest.mark.parametrize("suite", list(Suite))
def test_payload_encryption_round_trips_and_detects_tampering(suite: Suite) -> None:
    key = bytes(range(suite_lib.key_bytes(suite)))
    sealed = suite_lib.encrypt(suite, key, "身份证 610102...".encode(), aad=b"T1")
    assert suite_lib.decrypt(suite, key, sealed, aad=b"T1") == "身份证 610102...".encode()
    flipped = sealed[:-1] + bytes([sealed[-1] ^ 1])
    for bad, aad in ((flipped, b"T1"), (sealed, b"T2"), (sealed[:10], b"T1")):
        with pytest.raises(suite_lib.DecryptError):
            suite_lib.decrypt(suite, key, bad, aad=aad)


def test_suite_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    # The suite is a cloud setting, read only through the settings class.
    monkeypatch.setenv("CUNTONG_CLOUD_CRYPTO_SUITE", "sm")
    assert Suite(load(CloudSettings).crypto_suite) is Suite.SM
    monkeypatch.setenv("CUNTONG_CLOUD_CRYPTO_SUITE", "rot13")
    with pytest.raises(ConfigError, match="CRYPTO_SUITE"):
        load(CloudSettings)
