"""The agent's slots without processes: trial deadline, crash loop, the launcher's switch,
and wheels that must not be unpacked."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest

from common.wire.package import PackageRefused
from edge import agent_slots, ota_slots
from fleet.agent_release import Pin, carried, parse_lock, stamp


def _wheel(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return out.getvalue()


AGENT = {
    "cuntong/__main__.py": b"",
    "edge/agent.py": b"",
    "common/__init__.py": b'__version__ = "0.1.0"\n',
}


def test_a_trial_past_its_deadline_or_started_twice_goes_back() -> None:
    s = ota_slots.switch(ota_slots.Slots(versions={"a": "0.1"}), "0.2", trial_until=100.0)
    first = ota_slots.boot(s, now=50.0)
    assert (first.active, first.trial, first.boots) == ("b", True, 1)
    assert ota_slots.boot(s, now=101.0).active == "a"  # deadline passed
    assert ota_slots.boot(first, now=60.0).active == "a"  # a second start: a crash loop
    assert ota_slots.commit(first).trial_until is None
    assert ota_slots.boot(ota_slots.commit(first), now=1e9).active == "b"  # committed stays


def test_prepare_points_current_at_the_slot_and_puts_its_code_first(tmp_path: Path) -> None:
    env, slot = agent_slots.prepare(tmp_path, {"PYTHONPATH": "/x"}, 0.0)
    assert slot == "a" and env["PYTHONPATH"] == "/x"  # factory install: the base env
    payload = tmp_path / "w.whl"
    payload.write_bytes(stamp(_wheel(AGENT), "0.2.0"))
    slot_b = agent_slots.base(tmp_path) / "b"
    slot_b.mkdir(parents=True)
    agent_slots.unpack(payload, slot_b)
    agent_slots.save(tmp_path, ota_slots.switch(agent_slots.read(tmp_path), "0.2.0", 10.0))
    env, slot = agent_slots.prepare(tmp_path, {}, 5.0)
    assert slot == "b" and os.readlink(agent_slots.current_link(tmp_path)) == "b"
    site = Path(env["PYTHONPATH"])
    assert (site / "common" / "__init__.py").read_text() == '__version__ = "0.2.0"\n'
    _, slot = agent_slots.prepare(tmp_path, {}, 6.0)  # started again without a commit
    assert slot == "a" and os.readlink(agent_slots.current_link(tmp_path)) == "a"
    assert not agent_slots.read(tmp_path).trial


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        ({"edge/agent.py": b""}, "not_an_agent"),
        ({**AGENT, "../evil.py": b""}, "unsafe_path"),
        ({**AGENT, "/etc/evil": b""}, "unsafe_path"),
    ],
)
def test_a_payload_that_is_no_agent_wheel_is_refused(
    tmp_path: Path, files: dict[str, bytes], reason: str
) -> None:
    payload = tmp_path / "w.whl"
    payload.write_bytes(_wheel(files))
    with pytest.raises(PackageRefused, match=reason):
        agent_slots.unpack(payload, tmp_path / "slot")
    assert not (tmp_path / "slot").exists()
    payload.write_bytes(b"not a zip")
    with pytest.raises(PackageRefused, match="not_a_wheel"):
        agent_slots.check_wheel(payload)


def test_a_delta_rebuilds_the_target_and_a_wrong_file_is_refused(tmp_path: Path) -> None:
    from common.wire import delta as delta_wire
    from common.wire.package import describe

    base = stamp(_wheel({**AGENT, "edge/big.py": b"x" * 10_000}), "0.2.0")
    target = stamp(_wheel({**AGENT, "edge/big.py": b"x" * 10_000, "edge/new.py": b"n"}), "0.2.1")
    raw = delta_wire.build("agent", "0.2.0", base, "0.2.1", target)
    d = delta_wire.parse(raw)
    assert set(d.changed) == {"common/__init__.py", "edge/new.py"}  # big.py did not change
    base_slot = tmp_path / "a"
    base_slot.mkdir()
    (tmp_path / "base.whl").write_bytes(base)
    agent_slots.unpack(tmp_path / "base.whl", base_slot)

    def staged(payload: bytes, name: str) -> Path:
        slot = tmp_path / name
        slot.mkdir()
        (slot / "payload").write_bytes(payload)
        (slot / "manifest.json").write_bytes(describe("agent", "0.2.1", payload).to_bytes())
        return slot

    good = staged(raw, "b")
    agent_slots.apply_delta(good / "payload", base_slot, good)
    assert (good / "site" / "edge" / "new.py").read_bytes() == b"n"
    assert agent_slots.release_sha256(good) == d.sha256  # a later delta can start here

    # Signed and intact in transit, but a file's content does not match its hash.
    wrong = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw)) as src, zipfile.ZipFile(wrong, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, b"tampered" if info.filename == "files/edge/new.py" else data)
    bad = staged(wrong.getvalue(), "c")
    with pytest.raises(PackageRefused, match="delta_mismatch"):
        agent_slots.apply_delta(bad / "payload", base_slot, bad)
    # Against a slot that is not its base: refused before anything is written.
    other = staged(raw, "d")
    with pytest.raises(PackageRefused, match="base_mismatch"):
        agent_slots.apply_delta(other / "payload", good, other)
    assert not (other / "site").exists()
    with pytest.raises(PackageRefused, match="not_a_delta"):
        delta_wire.parse(b"garbage")


def test_a_lock_names_exact_pins_and_only_what_differs_from_the_base_travels() -> None:
    lock = parse_lock(
        "# pip-compile output\nHttpx==0.28.1 \\\n    --hash=sha256:aa\nnew_dep==1.0\n"
        "same==2.0  # comment\ncuntong==0.1.0\n"
    )
    assert lock["httpx"] == Pin("httpx", "0.28.1", ("aa",))
    base = parse_lock("httpx==0.27.0\nsame==2.0\n")
    assert [p.name for p in carried(lock, base)] == ["httpx", "new-dep"]  # not cuntong itself
    for bad, named in [("foo>=1\n", "foo>=1"), ("a==1\nA==2\n", "twice"), ("a==1 -e x\n", "-e")]:
        with pytest.raises(ValueError, match=named):
            parse_lock(bad)


def test_a_package_carries_no_nested_or_stray_files_under_agent_deps(tmp_path: Path) -> None:
    payload = tmp_path / "w.whl"
    for stray in ["agent-deps/x/y.whl", "agent-deps/run.sh"]:
        payload.write_bytes(_wheel({**AGENT, stray: b""}))
        with pytest.raises(PackageRefused, match="unsafe_path"):
            agent_slots.check_wheel(payload)
    payload.write_bytes(_wheel({**AGENT, "agent-deps/a-1-py3-none-any.whl": b""}))
    agent_slots.check_wheel(payload)
