"""Small real wheels for the update tests: a pure-Python dependency built the way the wheel
spec says (``.dist-info`` with METADATA, WHEEL and a RECORD of hashes), so pip installs it."""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest},{len(data)}"


def tiny_wheel(
    name: str, version: str, files: dict[str, bytes], tag: str = "py3-none-any"
) -> tuple[str, bytes]:
    """(file name, bytes) of a wheel of project ``name`` holding ``files``."""
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    content = {
        **files,
        f"{info}/METADATA": (f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n").encode(),
        f"{info}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: cuntong-tests\nRoot-Is-Purelib: true\nTag: {tag}\n"
        ).encode(),
    }
    record = "".join(f"{n},{_record_hash(d)}\n" for n, d in content.items())
    content[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for n, d in content.items():
            z.writestr(zipfile.ZipInfo(n, (2026, 1, 1, 0, 0, 0)), d)
    return f"{dist}-{version}-{tag}.whl", out.getvalue()
