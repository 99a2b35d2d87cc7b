"""``cuntong evidence verify PACKAGE``: check an evidence package offline.

Exit status 0 if intact, 1 if anything was altered (each alteration printed), 2 if the
path is not a package. Wire in with ``from cloud.evidence.cli import add_parser``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from cloud.catalogue import DEFAULT_PATH, load_catalogue
from cloud.evidence.identity import load_certificates
from cloud.evidence.keys import load_public
from cloud.evidence.verify import verify


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``evidence`` on the ``cuntong`` command's sub-parsers."""
    p = subparsers.add_parser("evidence", help="session evidence packages")
    sub = p.add_subparsers(dest="evidence_action", required=True)
    v = sub.add_parser("verify", help="check a package offline; names what was altered")
    v.add_argument("package", type=Path, help="package directory (holds package.json)")
    v.add_argument(
        "--trust",
        type=Path,
        action="append",
        default=[],
        help="PEM public key of the cloud's seal or TSA key (repeat); without it the "
        "package's own embedded keys are used and a warning printed",
    )
    v.add_argument(
        "--data-key",
        type=Path,
        help="the cloud's evidence-data-master.key: also decrypt files and check plaintext",
    )
    v.add_argument(
        "--catalogue",
        type=Path,
        default=DEFAULT_PATH,
        help="business catalogue the process is checked against (default: the shipped one)",
    )
    v.add_argument(
        "--device-ca",
        type=Path,
        action="append",
        default=[],
        help="PEM certificate(s) of the CA that issues terminal certificates (repeat; the "
        "provisioning state's ca/issuing.pem); without it the CA named in the package is "
        "used and a warning printed",
    )
    v.add_argument(
        "--crl",
        type=Path,
        help="PEM CRL of the terminals' CA (GET /api/v1/enrol/crl): also refuse results "
        "signed with a certificate it lists as revoked at the time",
    )
    v.add_argument(
        "--recording",
        type=Path,
        help="the call's archived recording: check it against the sealed SHA-256",
    )
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    v.set_defaults(func=_cmd_verify)


def _cmd_verify(args: argparse.Namespace) -> None:
    trusted = [load_public(path.read_bytes()) for path in args.trust]
    master = args.data_key.read_bytes() if args.data_key else None
    started = time.perf_counter()
    catalogue = load_catalogue(args.catalogue)
    try:
        device_ca = (
            load_certificates(path.read_bytes() for path in args.device_ca)
            if args.device_ca
            else []
        )
    except (OSError, ValueError) as err:
        raise SystemExit(f"--device-ca: {err}") from err
    crl = args.crl.read_bytes() if args.crl else None
    report = verify(
        args.package,
        trusted,
        master,
        catalogue,
        device_ca=device_ca,
        crl=crl,
        recording=args.recording,
    )
    elapsed = time.perf_counter() - started
    if args.json:
        print(json.dumps({**vars(report), "ok": report.ok, "seconds": elapsed}, indent=1))
    else:
        status = "INTACT" if report.ok else "ALTERED"
        print(
            f"{status}: session {report.session_id}, {report.events} events, "
            f"{report.files} files, {report.bytes_hashed} bytes checked in {elapsed:.3f} s"
        )
        for s in report.signed_steps:
            print(
                f"  ✓ {s['step']} signed by {s['signer']} "
                f"(certificate {s['serial']}, SHA-256 {s['fingerprint'][:16]}…)"
            )
        for o in report.overrides:
            print(f"  ⚑ {o['step']} overridden by {o['by']} at {o['at']}: {o['reason']}")
        if report.recording is not None:
            print(
                f"  ▶ recording {report.recording.get('reference')} "
                f"SHA-256 {report.recording.get('sha256')}"
            )
        for line in report.problems:
            print(f"  ✗ {line}")
        for line in report.warnings:
            print(f"  ! {line}")
    if not report.ok:
        raise SystemExit(1)
