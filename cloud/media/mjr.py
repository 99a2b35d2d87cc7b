"""The header of a Janus ``.mjr`` recording (format version 2), parsed and rebuilt.

Layout: the 8 bytes ``MJR00002``, a big-endian 16-bit length, then that many bytes of
JSON: ``{"t": "a"|"v"|"d", "c": codec, "s": created µs, "u": first packet µs}`` (Janus
writes it with ``", "`` and ``": "`` separators, in that key order). RTP packets follow.
``u`` is what lines the streams of one call up in time; nothing else in the file is
needed before ``janus-pp-rec`` runs.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Final

from common.errors import WireError

MAGIC: Final = b"MJR00002"
KINDS: Final = {"a": "audio", "v": "video", "d": "data"}
#: Enough bytes to hold any header Janus writes.
HEADER_READ: Final = 1024


@dataclass(frozen=True, slots=True)
class MjrHeader:
    kind: str  # "audio", "video" or "data"
    codec: str
    created_us: int
    first_packet_us: int

    @classmethod
    def parse(cls, data: bytes) -> MjrHeader:
        """Parse the start of an .mjr file; WireError (a ValueError) on anything else."""
        if data[:8] != MAGIC:
            raise WireError(f"not an MJR v2 recording (starts {data[:8]!r})")
        if len(data) < 10:
            raise WireError("MJR header truncated before its length")
        (length,) = struct.unpack(">H", data[8:10])
        if len(data) < 10 + length:
            raise WireError(f"MJR header truncated: {len(data) - 10} of {length} bytes")
        try:
            info = json.loads(data[10 : 10 + length])
            kind = KINDS[info["t"]]
            return cls(kind, str(info["c"]), int(info["s"]), int(info["u"]))
        except (ValueError, KeyError, TypeError) as err:
            raise WireError(f"bad MJR header JSON: {err}") from err

    def to_bytes(self) -> bytes:
        letter = next(k for k, v in KINDS.items() if v == self.kind)
        info = {"t": letter, "c": self.codec, "s": self.created_us, "u": self.first_packet_us}
        body = json.dumps(info).encode()
        return MAGIC + struct.pack(">H", len(body)) + body
