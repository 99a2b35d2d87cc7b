"""The built wheel carries every file it serves: the pages work from an install outside a checkout.

The wheel is built the way a bank would build it (``pip wheel``), unpacked into a folder of its
own and run from a working folder outside the checkout, with that folder first on the path, so
every page, script and stylesheet must come from the wheel (the test checks where the packages
were imported from). The cloud app serves the teller desk, the watch page, the fleet dashboard
and the big screen; the agent's screen server serves the customer screen.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import httpx
import pytest

from common import procs

ROOT = Path(__file__).resolve().parents[2]

SERVE = textwrap.dedent(
    """
    import sys

    # Guarded: the app's process pool re-runs this file as __mp_main__ in its forkserver.
    if __name__ == "__main__":
        sys.path.insert(0, sys.argv[1])  # the unpacked wheel, ahead of the editable finder
        import asyncio, datetime as dt
        from pathlib import Path
        import uvicorn

        import cloud, common, edge, fleet
        for package in (cloud, common, edge, fleet):
            assert Path(package.__file__).is_relative_to(sys.argv[1]), package.__file__

        from common.settings import CloudSettings
        from cuntong.app import create_app
        from edge.teller.client import TellerClient
        from edge.teller.paperwork import Paperwork
        from edge.teller.screen import Screen

        async def main() -> None:
            async def publish(payload: bytes) -> None:
                return None

            async def no_capture(kind: str) -> None:
                return None

            client = TellerClient(
                publish, lambda *a: None, lambda send: Paperwork(send, no_capture),
                lambda: dt.datetime.now(dt.UTC),
            )
            app = create_app(CloudSettings(db_url=f"sqlite://{sys.argv[2]}", ingest=False))
            server = uvicorn.Server(
                uvicorn.Config(app, host="127.0.0.1", port=int(sys.argv[3]), log_level="warning")
            )
            async with Screen(client, None, int(sys.argv[4])):
                await server.serve()

        asyncio.run(main())
    """
)

CLOUD_PAGES = (
    "/teller",
    "/teller/watch",
    "/teller/static/teller.css",
    "/teller/static/teller-app.js",
    "/fleet/",
    "/fleet/static/app.js",
    "/fleet/static/style.css",
    "/api/v1/ops/screen",
    "/ui/dom.js",
    "/ui/i18n.js",
    "/ui/login.js",
)
SCREEN_PAGES = ("/", "/screen.js", "/screen.css", "/ui/dom.js")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built and unpacked into a folder outside the checkout."""
    out = tmp_path_factory.mktemp("wheel")
    # A copy of the source, so the build leaves nothing in the checkout (setuptools builds in
    # the source folder, and a stale build/ there could hide a missing file).
    source = out / "source"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", ".state", "build", "*.egg-info", "__pycache__", ".*_cache"
        ),
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
        check=True,
        timeout=300,
    )
    (wheel,) = out.glob("cuntong-*.whl")
    target = out / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    return target


def test_the_wheel_serves_every_page(installed: Path, tmp_path: Path) -> None:
    api_port, screen_port = procs.free_port(), procs.free_port()
    script = tmp_path / "serve.py"
    script.write_text(SERVE)
    proc = procs.start(
        [
            sys.executable,
            "-I",  # no checkout on the path, no user site, no PYTHON* variables
            str(script),
            str(installed),
            str(tmp_path / "cloud.sqlite3"),
            str(api_port),
            str(screen_port),
        ],
        tmp_path / "serve.log",
        cwd=tmp_path,
    )
    try:
        procs.wait_for_port(api_port, "127.0.0.1", 60, proc)
        procs.wait_for_port(screen_port, "127.0.0.1", 30, proc)
        with httpx.Client(timeout=10) as http:
            for base, paths in (
                (f"http://127.0.0.1:{api_port}", CLOUD_PAGES),
                (f"http://127.0.0.1:{screen_port}", SCREEN_PAGES),
            ):
                for path in paths:
                    answer = http.get(base + path)
                    assert answer.status_code == 200, (path, answer.status_code, answer.text)
                    assert answer.content, path
    finally:
        procs.stop(proc)
    log = (tmp_path / "serve.log").read_text()
    assert "AssertionError" not in log, log
