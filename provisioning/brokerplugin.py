"""The broker's refusal plugin (``broker_plugin/cuntong_refusals.c``), built on this host.

Mosquitto 2.0.11's dynamic-security plugin refuses a foreign SUBSCRIBE but reports it
nowhere. This small plugin, loaded before it, refuses a terminal's SUBSCRIBE outside its
own subtree (``$share/...`` included) itself and publishes one report per refusal on
``common.topics.BROKER_REFUSED``, which ingest counts per terminal; it defers everything
else to the dynamic-security plugin (the C file says how).

``build(folder)`` compiles it once per source version (the file name carries the
source's digest, so an upgrade rebuilds) with the system C compiler against Debian's
``mosquitto-dev``/``libmosquitto-dev`` headers; ``$CUNTONG_MOSQUITTO_REFUSALS`` names a
prebuilt one instead. Without a compiler or headers it raises ``MissingBinary`` saying
what to install.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

from common.errors import MissingBinary

__all__ = ["PLUGIN_ENV", "build", "compile_argv", "plugin_name", "source"]

PLUGIN_ENV = "CUNTONG_MOSQUITTO_REFUSALS"
INSTALL_HINT = "apt install gcc mosquitto-dev libmosquitto-dev (scripts/apt-packages.txt)"


def source() -> bytes:
    return resources.files("provisioning").joinpath("broker_plugin/cuntong_refusals.c").read_bytes()


def plugin_name() -> str:
    """The built plugin's file name: it carries the source's digest (an upgrade rebuilds)."""
    return f"cuntong_refusals-{hashlib.sha256(source()).hexdigest()[:16]}.so"


def compile_argv(compiler: str, src: Path, out: Path) -> list[str]:
    """How the plugin is compiled (here, and by a rendered broker unit's ExecStartPre)."""
    return [compiler, "-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o", str(out), str(src)]


def build(folder: Path) -> Path:
    """The plugin's ``.so`` in ``folder`` (built now if this source version is not there
    yet), or ``$CUNTONG_MOSQUITTO_REFUSALS``."""
    given = os.environ.get(PLUGIN_ENV)
    if given:
        if not Path(given).is_file():
            raise MissingBinary(f"{PLUGIN_ENV}={given}: no such file")
        return Path(given)
    code = source()
    target = folder / plugin_name()
    if target.is_file():
        return target
    compiler = shutil.which(os.environ.get("CC", "gcc"))
    if compiler is None:
        raise MissingBinary(f"the broker's refusal plugin needs a C compiler: {INSTALL_HINT}")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as work:
        src, out = Path(work) / "cuntong_refusals.c", Path(work) / "plugin.so"
        src.write_bytes(code)
        done = subprocess.run(
            compile_argv(compiler, src, out),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise MissingBinary(
                f"building the broker's refusal plugin failed ({INSTALL_HINT}):\n"
                + done.stderr.strip()[-2000:]
            )
        out.chmod(0o644)
        os.replace(out, target)  # atomic: a concurrent start sees all of it or nothing
    return target
