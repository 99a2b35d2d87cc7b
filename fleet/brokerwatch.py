"""Follows the brokers' logs and tells the misbehaviour watch what they refused: each
refused PUBLISH (``publish_refused``) of a terminal, and each refused SUBSCRIBE
(``subscribe_refused``) inside its own subtree. A filter outside it is refused and
reported by the broker's refusal plugin (``provisioning.brokerplugin``, on by default),
which ingest counts; the log does not count it twice.

The broker must log with ``refusal_log`` on (``provisioning.broker.broker_config``); the
lines are read by ``provisioning.brokerlog``. The file is followed like ``tail -F``:
from its end at start, from the top again when it was truncated or replaced (log
rotation). Client ids are certificate CNs (``use_username_as_clientid``): a terminal's is
its id; service clients (``svc.<instance>``) are not terminals and are skipped.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from common.topics import ROOT, valid_terminal_id
from provisioning.brokerlog import Refusal, RefusalLog

log = logging.getLogger("cuntong.fleet.brokerwatch")

SIGNALS = {"subscribe": "subscribe_refused", "publish": "publish_refused"}
#: Read at most this much per wake-up (a busy debug log is several MB/s).
CHUNK = 1 << 20


class LogFollower:
    """Reads whole lines appended to ``path`` since the last call (``tail -F``); the first
    open starts at the end unless ``from_start``."""

    def __init__(self, path: Path, *, from_start: bool = False) -> None:
        self.path = path
        self._file: BinaryIO | None = None
        self._inode: int | None = None
        self._rest = b""
        self._skip = not from_start

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def read(self) -> list[str]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._skip = False  # when it appears, all of it is new
            return []
        if self._file is None or st.st_ino != self._inode or st.st_size < self._file.tell():
            self.close()
            self._file = self.path.open("rb")
            self._inode, self._rest = st.st_ino, b""
            if self._skip:  # what came before we started is old news
                self._file.seek(0, os.SEEK_END)
                self._skip = False
        data = self._rest + self._file.read(CHUNK)
        *lines, self._rest = data.split(b"\n")
        return [line.decode("utf-8", "replace") for line in lines]


def counted(refusal: Refusal) -> bool:
    """A terminal's refusal the broker's refusal plugin did not already report: every
    refused PUBLISH, and a refused filter inside the terminal's own subtree (the plugin
    reports, and counts, only filters outside it; docs/fleet.md)."""
    if not valid_terminal_id(refusal.client_id):
        return False  # a cloud service, not a terminal
    own = f"{ROOT}/{refusal.client_id}/"
    return refusal.kind == "publish" or refusal.topic.startswith(own)


async def follow(paths: list[Path], signal: Callable[[str, str], None], every: float = 0.5) -> None:
    """Run for ever: every ``every`` s, read the new lines of each broker log and call
    ``signal(terminal_id, "subscribe_refused" | "publish_refused")`` per refusal."""
    followers = [(LogFollower(p), RefusalLog()) for p in paths]
    try:
        while True:
            for follower, parser in followers:
                try:
                    lines = await asyncio.to_thread(follower.read)
                except OSError as err:
                    log.warning("cannot read broker log %s: %s", follower.path, err)
                    continue
                for line in lines:
                    for refusal in parser.feed(line):
                        if counted(refusal):
                            signal(refusal.client_id, SIGNALS[refusal.kind])
            await asyncio.sleep(every)
    finally:
        for follower, _ in followers:
            follower.close()
