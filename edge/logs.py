"""The agent's rotating log files, and the bounded bundle ``collect_logs`` sends.

``install`` adds a size-rotated file handler under ``<state_dir>/logs`` to the ``cuntong``
logger (``agent.log``, ``agent.log.1`` … ``agent.log.<backups>``), redacting each line as it
is written. ``bundle`` reads the newest lines first, redacts them again (a file written by an
older agent may predate the redaction) and stops at ``max_bytes``.
"""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

from edge.redact import redact

LOG_NAME = "agent.log"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _Redacting(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def install(log_dir: Path, max_bytes: int, backups: int) -> logging.Handler:
    log_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        log_dir / LOG_NAME, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
    )
    handler.setFormatter(_Redacting(FORMAT))
    logging.getLogger("cuntong").addHandler(handler)
    return handler


def files(log_dir: Path) -> list[Path]:
    """The log files, newest first (agent.log, agent.log.1, …)."""
    found = [p for p in log_dir.glob(f"{LOG_NAME}*") if p.is_file()] if log_dir.exists() else []

    def age(p: Path) -> int:
        suffix = p.name[len(LOG_NAME) :].lstrip(".")
        return int(suffix) if suffix.isdigit() else 0

    return sorted(found, key=age)


def bundle(log_dir: Path, max_bytes: int) -> tuple[str, bool]:
    """The newest log text within ``max_bytes`` (UTF-8), redacted, oldest line first; and
    whether older lines were left out."""
    kept: list[str] = []
    size = 0
    for path in files(log_dir):
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        for line in reversed(lines):
            clean = redact(line) + "\n"
            cost = len(clean.encode())
            if size + cost > max_bytes:
                kept.reverse()
                return "".join(kept), True
            kept.append(clean)
            size += cost
    kept.reverse()
    return "".join(kept), False
