"""``cuntong provision`` sub-commands against a real SQLite registry and state folder."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from tortoise import Tortoise

from provisioning import ca as ca_lib
from provisioning.cli import add_parser
from provisioning.cli_actions import tortoise_config
from provisioning.device import new_csr
from provisioning.errors import ClaimRefused
from provisioning.wiring import BROKER_TLS_DIR
from tests.provisioning.conftest import enrol_request


def cuntong(state: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    parser = argparse.ArgumentParser(prog="cuntong")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["provision", "--state-dir", str(state), *argv])
    args.func(args)
    return capsys.readouterr().out


def enrol_directly(state: Path, token: str, terminal_id: str) -> None:
    """What the API would do, on the same registry the CLI uses."""
    from provisioning import keys as keys_lib
    from provisioning.protocol import BrokerAddress
    from provisioning.service import Provisioner

    async def go() -> None:
        await Tortoise.init(config=tortoise_config(f"sqlite://{state / 'cloud.sqlite3'}"))
        try:
            now = dt.datetime.now(dt.UTC)
            prov = Provisioner(
                ca_lib.load_or_create(state, now),
                keys_lib.load_or_create(state),
                BrokerAddress(host="127.0.0.1", port=8883, server_name="127.0.0.1"),
            )
            req = enrol_request(token, terminal_id)
            req.csr_pem = new_csr(ca_lib.new_key(), terminal_id).decode()
            await prov.enrol(req, now)
        finally:
            await Tortoise.close_connections()

    asyncio.run(go())


def test_claims_and_devices_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    out = cuntong(state, capsys, "ca", "init")
    assert "fingerprint  SHA256" in out and (state / "ca" / "issuing-key.pem").exists()

    out = cuntong(
        state,
        capsys,
        "claim",
        "create",
        "--uses",
        "2",
        "--days",
        "7",
        "--region",
        "陕西省",
        "--label",
        "batch-2026-05",
    )
    token = out.strip().splitlines()[-1]
    assert token.startswith("ctk_")
    enrol_directly(state, token, "SX-00001")
    enrol_directly(state, token, "SX-00002")
    with pytest.raises(ClaimRefused):
        enrol_directly(state, token, "SX-00003")

    listing = cuntong(state, capsys, "claim", "list")
    assert "2/2" in listing and "陕西省" in listing and "open" in listing
    claim_id = token[4:].split(".")[0]
    cuntong(state, capsys, "claim", "revoke", claim_id)
    assert "revoked" in cuntong(state, capsys, "claim", "list")

    devices = cuntong(state, capsys, "device", "list")
    assert "SX-00001" in devices and "SX-00002" in devices and "陕西省/西安市" in devices
    assert "revoked 1 certificate" in cuntong(state, capsys, "device", "revoke", "SX-00001")
    cuntong(state, capsys, "device", "decommission", "SX-00002")
    assert "SX-00001" in cuntong(state, capsys, "device", "list", "--status", "revoked")
    assert "SX-00002" in cuntong(state, capsys, "device", "list", "--status", "decommissioned")

    crl = x509.load_pem_x509_crl((state / BROKER_TLS_DIR / "crl.pem").read_bytes())
    assert len(list(crl)) == 3  # two terminals' certificates and the canary
