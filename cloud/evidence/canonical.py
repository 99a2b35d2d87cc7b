"""Canonical JSON bytes: the one serialisation every hash and signature is computed over.

Sorted keys, no whitespace, UTF-8 (Chinese names stay readable). Two parties serialising
the same value get the same bytes, which is what lets a verifier recompute hashes.
"""

from __future__ import annotations

import json
from typing import Any


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
