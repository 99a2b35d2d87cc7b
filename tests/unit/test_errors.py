"""One exception tree: every exception class cuntong defines hangs under CuntongError."""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import pytest

from cloud.evidence import service as evidence
from cloud.quality.service import ReviewConflict
from common.errors import CuntongError, PackageExists, Refusal, WireError
from common.wire.datachannel import BadChannelMessage
from common.wire.package import PackageRefused
from edge.teller.screen import HttpError
from fleet import packages
from fleet.errors import FleetError
from fleet.lifecycle import TransitionError
from fleet.registry import GroupNotFound

ROOT = Path(__file__).parent.parent.parent
PACKAGES = (
    "common", "janus_client", "provisioning", "firmware_adapters", "models", "cloud", "edge",
    "fleet", "modeltools", "cuntong", "hsm", "corebank", "idcheck",
)  # fmt: skip
BUILTIN_ERRORS = {
    name for name, obj in vars(builtins).items()
    if isinstance(obj, type) and issubclass(obj, BaseException)
}  # fmt: skip


def test_no_exception_class_roots_outside_the_tree() -> None:
    """A class whose bases are only built-in exceptions starts a second tree."""
    stray = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.ClassDef) or not node.bases:
                    continue
                bases = {b.id for b in node.bases if isinstance(b, ast.Name)}
                if len(bases) == len(node.bases) and bases <= BUILTIN_ERRORS:
                    stray.append(f"{path.relative_to(ROOT)}: {node.name}{sorted(bases)}")
    assert stray == ["common/errors.py: CuntongError['Exception']"]


@pytest.mark.parametrize(
    ("error", "branch", "builtin"),
    [
        (TransitionError, FleetError, ValueError),
        (GroupNotFound, FleetError, LookupError),
        (PackageExists, CuntongError, ValueError),
        (PackageRefused, Refusal, ValueError),
        (BadChannelMessage, WireError, ValueError),
        (ReviewConflict, CuntongError, ValueError),
        (HttpError, CuntongError, ValueError),
    ],
)
def test_moved_errors_keep_their_builtin_base(
    error: type[Exception], branch: type[Exception], builtin: type[Exception]
) -> None:
    assert issubclass(error, branch) and issubclass(error, builtin)


def test_one_package_exists() -> None:
    assert packages.PackageExists is PackageExists is evidence.PackageExists


def test_a_refused_package_still_says_why() -> None:
    err = PackageRefused("bad_signature", "agent 1.2")
    assert (err.reason, err.detail, str(err)) == (
        "bad_signature",
        "agent 1.2",
        "bad_signature: agent 1.2",
    )
