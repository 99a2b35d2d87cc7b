"""Private files: keys, certificates and claims written atomically with owner-only modes.

A reader never sees a half-written key (write to a temporary name, fsync, rename), and the
file is 0600 from its first byte (created with that mode, not chmod-ed afterwards).
"""

from __future__ import annotations

import os
from pathlib import Path


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and make it 0700."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def write_private(path: Path, data: bytes) -> Path:
    """Atomically replace ``path`` with ``data``, mode 0600."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_public(path: Path, data: bytes) -> Path:
    """Atomically replace ``path`` with world-readable ``data`` (CA bundles, CRLs, ACLs)."""
    write_private(path, data)
    path.chmod(0o644)
    return path
