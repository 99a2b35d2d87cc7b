"""The layer contracts (pyproject.toml, docs/architecture.md) hold; an upward import breaks them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")
PACKAGES = (
    "cuntong",
    "common",
    "janus_client",
    "edge",
    "cloud",
    "fleet",
    "models",
    "modeltools",
    "firmware_adapters",
    "provisioning",
    "hsm",
    "corebank",
    "idcheck",
)


def _lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def _copy_tree(dest: Path) -> None:
    """The project's Python files and pyproject.toml, nothing else (models are megabytes)."""
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    for package in PACKAGES:
        for src in (ROOT / package).rglob("*.py"):
            target = dest / src.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, target)


def test_the_tree_keeps_every_contract() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "upward"),
    [
        ("common/_probe.py", "import cloud.db\n"),  # the bottom layer reaching up
        ("edge/_probe.py", "import cloud.db\n"),  # a sibling on the processes layer
        ("provisioning/_probe.py", "from cuntong import servers\n"),  # production → launcher
        ("cloud/_probe.py", "import fleet.wiring\n"),  # the cloud reaching into a feature
    ],
)
def test_an_upward_import_fails_the_check(tmp_path: Path, module: str, upward: str) -> None:
    _copy_tree(tmp_path)
    (tmp_path / module).write_text(upward)
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert module.replace("/", ".").removesuffix(".py") in result.stdout
