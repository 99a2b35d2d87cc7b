"""Agent releases: the project's wheel, stamped with the version it reports.

A release is the wheel ``pip wheel`` builds from the source tree; ``stamp`` writes the
release version into ``common/__init__.py`` (what the agent reports in ``versions``) and
may replace other files (a patch release). The result is uploaded as the ``agent``
package (``PUT /api/v1/fleet/packages/agent/<version>``) and rolled out like any other.
The wheel's RECORD is left as built: terminals check the signed manifest's SHA-256 of the
whole wheel, not RECORD.
"""

from __future__ import annotations

import io
import re
import zipfile

VERSION_FILE = "common/__init__.py"


def stamp(wheel: bytes, version: str, replace: dict[str, bytes] | None = None) -> bytes:
    """A copy of ``wheel`` that reports ``version``, with ``replace``'s files swapped in."""
    replace = dict(replace or {})
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(wheel)) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            data = replace.pop(info.filename, None)
            if data is None:
                data = src.read(info)
            if info.filename == VERSION_FILE:
                data, n = re.subn(
                    rb'__version__ = "[^"]*"', f'__version__ = "{version}"'.encode(), data
                )
                if n != 1:
                    raise ValueError(f"{VERSION_FILE} has no __version__ to stamp")
            dst.writestr(info, data)
        for name, data in replace.items():
            dst.writestr(name, data)
    return out.getvalue()
