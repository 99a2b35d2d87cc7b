"""The kiosk launcher (scripts/kiosk/cuntong-screen) shows the customer screen and starts a
crashed Chromium again; its systemd unit is well-formed.

The launcher runs for real against a real ``Screen`` server, with Chromium headless (no
display here); the page's polls of ``/state`` show it is up. The test kills Chromium the
way a crash does (SIGKILL) and waits for a new one whose page polls again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

from edge.teller.client import TellerClient
from edge.teller.paperwork import Paperwork
from edge.teller.screen import Screen
from tests.helpers import eventually

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "scripts" / "kiosk" / "cuntong-screen"
UNIT = ROOT / "scripts" / "kiosk" / "cuntong-screen.service"


class CountingScreen(Screen):
    """The real screen server, counting the page's polls."""

    polls = 0

    def _state(self) -> dict[str, Any]:
        self.polls += 1
        return super()._state()


def _client() -> TellerClient:
    async def publish(payload: bytes) -> None:
        return None

    async def no_capture(kind: str) -> None:
        return None

    return TellerClient(
        publish,
        lambda *a: None,  # type: ignore[arg-type,return-value]
        lambda send: Paperwork(send, no_capture),
        lambda: dt.datetime.now(dt.UTC),
    )


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


async def test_the_launcher_restarts_a_crashed_screen(tmp_path: Path) -> None:
    async with CountingScreen(_client(), None, 0, voice=None) as screen:
        env = {
            **os.environ,
            "CUNTONG_AGENT_SCREEN_PORT": str(screen.port),
            "CUNTONG_KIOSK_RESTART_S": "0.5",
            "CUNTONG_KIOSK_PROFILE": str(tmp_path / "profile"),
            "CUNTONG_KIOSK_FLAGS": "--headless=new --no-sandbox --disable-gpu",
        }
        launcher = await asyncio.create_subprocess_exec(
            str(LAUNCHER), env=env, stderr=asyncio.subprocess.PIPE
        )
        try:

            async def browser() -> int | None:
                kids = [p for p in _children(launcher.pid) if "chrom" in _name(p)]
                return kids[0] if kids else None

            first = await eventually(browser, timeout=30)
            await eventually(lambda: _at_least(screen, 3), timeout=30)
            os.kill(first, signal.SIGKILL)  # a crash
            polls = screen.polls

            async def another() -> int | None:
                pid = await browser()
                return pid if pid not in (None, first) else None

            await eventually(another, timeout=30)
            await eventually(lambda: _at_least(screen, polls + 3), timeout=30)
        finally:
            launcher.terminate()
            _, err = await asyncio.wait_for(launcher.communicate(), 15)
        assert launcher.returncode == 0
        assert b"starting it again" in err


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text()
    except OSError:
        return ""


async def _at_least(screen: CountingScreen, n: int) -> bool:
    await asyncio.sleep(0)
    return screen.polls >= n


def test_the_unit_restarts_the_launcher_always() -> None:
    text = UNIT.read_text()
    assert "Restart=always" in text
    assert "ExecStart=/usr/bin/cage -s -- /opt/cuntong/scripts/kiosk/cuntong-screen" in text
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(UNIT)], capture_output=True, text=True
    )
    # cage is a terminal's package, not this machine's: its absence is the one complaint
    complaints = [line for line in done.stderr.splitlines() if line and "/usr/bin/cage" not in line]
    assert complaints == []


async def test_the_kiosk_fills_a_real_display_and_comes_back_after_a_crash(
    tmp_path: Path,
) -> None:
    """The launcher on an X display (Xvfb): Chromium's kiosk window covers the whole screen
    and shows the customer screen; after a crash the new window covers it again."""
    server, display = await asyncio.to_thread(_xvfb, (1280, 800))
    try:
        async with CountingScreen(_client(), None, 0, voice=None) as screen:
            env = {
                **os.environ,
                "DISPLAY": display,
                "CUNTONG_AGENT_SCREEN_PORT": str(screen.port),
                "CUNTONG_KIOSK_RESTART_S": "0.5",
                "CUNTONG_KIOSK_PROFILE": str(tmp_path / "profile"),
                "CUNTONG_KIOSK_FLAGS": "--no-sandbox --disable-gpu --ozone-platform=x11",
            }
            launcher = await asyncio.create_subprocess_exec(
                str(LAUNCHER), env=env, stderr=asyncio.subprocess.PIPE
            )
            try:
                first = await eventually(lambda: _browser(launcher.pid), timeout=30)
                await eventually(lambda: _at_least(screen, 3), timeout=60)
                await eventually(lambda: _full_screen_window(display, (1280, 800)), timeout=60)
                os.kill(first, signal.SIGKILL)  # a crash

                async def another() -> int | None:
                    pid = await _browser(launcher.pid)
                    return pid if pid not in (None, first) else None

                await eventually(another, timeout=30)
                polls = screen.polls
                await eventually(lambda: _at_least(screen, polls + 3), timeout=60)
                await eventually(lambda: _full_screen_window(display, (1280, 800)), timeout=60)
            finally:
                launcher.terminate()
                await asyncio.wait_for(launcher.communicate(), 15)
    finally:
        server.terminate()
        server.wait(timeout=10)


def _xvfb(size: tuple[int, int]) -> tuple[subprocess.Popen[bytes], str]:
    """An X server on a free display number (``-displayfd``), and that display."""
    xvfb = shutil.which("Xvfb")
    assert xvfb, "Xvfb missing: scripts/apt-packages.txt lists xvfb"
    read, write = os.pipe()
    screen = f"{size[0]}x{size[1]}x24"
    server = subprocess.Popen(
        [xvfb, "-displayfd", str(write), "-screen", "0", screen, "-nolisten", "tcp"],
        pass_fds=(write,),
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    with os.fdopen(read) as f:
        return server, f":{f.readline().strip()}"


async def _browser(launcher: int) -> int | None:
    kids = [p for p in _children(launcher) if "chrom" in _name(p)]
    return kids[0] if kids else None


async def _full_screen_window(display: str, size: tuple[int, int]) -> bool:
    """A Chromium top-level window over the whole screen (``xwininfo``), painted."""
    done = await asyncio.to_thread(
        subprocess.run,
        ["xwininfo", "-display", display, "-root", "-children"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    for line in done.stdout.splitlines():
        line = line.strip()
        if line.startswith("0x") and "chromium" in line.lower():
            found = re.search(r"(\d+)x(\d+)\+(-?\d+)\+(-?\d+)\s+\S+$", line)  # 1279x799+0+0
            if found is None:
                continue
            w, h, x, y = (int(v) for v in found.groups())
            # Chromium on X without a window manager keeps one pixel short of the screen
            covers = (x, y) == (0, 0) and w >= size[0] - 1 and h >= size[1] - 1
            if covers:
                return await asyncio.to_thread(_painted_corner, display, size)
    return False


def _painted_corner(display: str, size: tuple[int, int]) -> bool:
    """The page is drawn into the screen's far corner (an empty X screen is black there)."""
    from PIL import ImageGrab

    shot = ImageGrab.grab(xdisplay=display)
    if os.environ.get("CUNTONG_KIOSK_SHOT"):
        shot.save(os.environ["CUNTONG_KIOSK_SHOT"])
    return bool(shot.convert("RGB").getpixel((size[0] - 5, size[1] - 5)) != (0, 0, 0))
