"""Adapters built from plain configuration, their health, and the self-test entry point."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from common.errors import ConfigError
from firmware_adapters.camera.adapter import Camera
from firmware_adapters.iccard.pcscd import READER_NAME
from firmware_adapters.iccard.vpcd import VirtualCardSlot
from firmware_adapters.idcard.adapter import IdCardReader
from firmware_adapters.pty_server import PtyServer
from firmware_adapters.registry import build_adapters, health, states
from firmware_adapters.selftest import main, run_self_tests


def config(idcard: PtyServer, pinpad: PtyServer) -> dict[str, dict[str, object]]:
    return {
        "idcard": {"port": str(idcard.link), "baudrate": 115200},
        "pinpad": {"port": str(pinpad.link), "timeout": 0.5},
        "iccard": {"reader": READER_NAME},
        "camera": {"device": "synthetic", "width": 160, "height": 120},
        "backcam": {"kind": "camera", "device": "/dev/video-cuntong-missing"},
        "spare": {"kind": "pinpad", "port": "/dev/null", "enabled": False},
    }


async def test_builds_configured_adapters_and_reports_health(
    idcard_pty: PtyServer, pinpad_pty: PtyServer, card_slot: VirtualCardSlot
) -> None:
    adapters = build_adapters(config(idcard_pty, pinpad_pty))
    assert sorted(adapters) == ["backcam", "camera", "iccard", "idcard", "pinpad"]
    assert isinstance(adapters["idcard"], IdCardReader)
    assert isinstance(adapters["backcam"], Camera)
    results = {r.name: r for r in await run_self_tests(adapters)}
    assert {n for n, r in results.items() if r.passed} == {"idcard", "pinpad", "iccard", "camera"}
    snapshot = health(adapters)
    assert snapshot["backcam"]["state"] == "absent"
    assert snapshot["idcard"]["state"] == "ok"
    assert snapshot["idcard"]["faults"] == 0
    assert set(snapshot["camera"]) >= {"state", "operations", "faults", "consecutive_faults"}
    assert states(adapters) == {
        "idcard": "ok", "pinpad": "ok", "iccard": "ok", "camera": "ok", "backcam": "absent"
    }  # fmt: skip


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"kind": "printer"}, "unknown kind"),
        ({"kind": "idcard"}, "needs a serial port"),
        ({"kind": "idcard", "port": "/dev/x", "parity": "E"}, "unknown settings"),
    ],
)
def test_bad_configuration_refuses_to_build(entry: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_adapters({"dev": entry})


def test_self_test_entry_point_prints_and_exits_by_result(
    tmp_path: Path, idcard_pty: PtyServer, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"idcard": {"port": str(idcard_pty.link)}, "camera": {}}))
    assert main(["--config", str(good)]) == 0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"idcard": {"port": str(tmp_path / "unplugged")}}))
    assert main(["--config", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "PASS idcard" in out and "FAIL idcard" in out and "DeviceAbsent" in out


def test_package_never_imports_the_agent_fleet_or_cloud() -> None:
    root = Path(__file__).parents[2] / "firmware_adapters"
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names] if isinstance(node, ast.Import)
                else [node.module or ""] if isinstance(node, ast.ImportFrom)
                else []
            )  # fmt: skip
            for name in names:
                assert name.split(".")[0] not in {"edge", "fleet", "cloud"}, f"{path}: {name}"


def test_cli_subcommand_runs_the_self_test(tmp_path: Path, idcard_pty: PtyServer) -> None:
    import argparse

    from firmware_adapters.cli import add_parser

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"idcard": {"port": str(idcard_pty.link)}}))
    args = parser.parse_args(["peripherals", "selftest", "--config", str(good)])
    args.func(args)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"idcard": {"port": str(tmp_path / "unplugged")}}))
    args = parser.parse_args(["peripherals", "selftest", "--config", str(bad)])
    with pytest.raises(SystemExit) as exited:
        args.func(args)
    assert exited.value.code == 1


async def test_the_id_reader_decodes_the_photo_with_the_configured_decoder(
    idcard_pty: PtyServer,
) -> None:
    """``photo_decoder``: without one the reader hands over no photo (so the terminal has
    nothing for the face match or the teller); "simulator" passes the simulator's JPEG."""
    plain = build_adapters({"idcard": {"port": str(idcard_pty.link)}})["idcard"]
    decoded = build_adapters(
        {"idcard": {"port": str(idcard_pty.link), "photo_decoder": "simulator"}}
    )["idcard"]
    assert isinstance(plain, IdCardReader) and isinstance(decoded, IdCardReader)
    async with plain:
        assert (await plain.read_card()).photo is None
    async with decoded:
        photo = (await decoded.read_card()).photo
    assert photo is not None and photo.startswith(b"\xff\xd8\xff")


@pytest.mark.parametrize("spec", ["vendor", "no.such.module:Wlt", "json:NoSuchClass"])
def test_an_unusable_photo_decoder_is_refused_by_name(spec: str) -> None:
    with pytest.raises(ConfigError, match=f"photo_decoder {spec!r} is not usable"):
        build_adapters({"idcard": {"port": "/dev/x", "photo_decoder": spec}})
