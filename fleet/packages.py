"""The cloud's OTA package store: payloads, manifests and signatures on disk.

``<root>/<component>/<version>/{payload,manifest.json,signature}``; a version, once
published, is immutable (a new build is a new version).
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

from common.errors import PackageExists
from common.wire.commands import SigningKey
from common.wire.package import Manifest, describe, sign


class PackageStore:
    def __init__(self, root: Path, key: SigningKey) -> None:
        self.root = root
        self.key = key

    def folder(self, component: str, version: str) -> Path:
        Manifest(component, version, 0, "0" * 64)  # validates both as path-safe names
        return self.root / component / version

    def publish(self, component: str, version: str, payload: bytes) -> Manifest:
        manifest = describe(component, version, payload)
        folder = self.folder(component, version)
        if folder.exists():
            raise PackageExists(f"{component} {version} is already published")
        tmp = folder.with_name(f".{version}.tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / "payload").write_bytes(payload)
        (tmp / "manifest.json").write_bytes(manifest.to_bytes())
        (tmp / "signature").write_bytes(sign(self.key, manifest))
        os.replace(tmp, folder)  # readers see all three files or none
        return manifest

    def get(self, component: str, version: str) -> tuple[bytes, bytes] | None:
        """(manifest bytes, signature) or None."""
        folder = self.folder(component, version)
        if not (folder / "signature").exists():
            return None
        return (folder / "manifest.json").read_bytes(), (folder / "signature").read_bytes()

    def list(self) -> list[dict[str, Any]]:
        out = []
        for path in sorted(self.root.glob("*/*/manifest.json")):
            m = Manifest.parse(path.read_bytes())
            out.append(
                {"component": m.component, "version": m.version, "size": m.size, "sha256": m.sha256}
            )
        return out

    def install_args(self, component: str, version: str, base_url: str) -> dict[str, Any]:
        """The ``ota_install`` command arguments for a published package."""
        found = self.get(component, version)
        if found is None:
            raise LookupError(f"package {component} {version} not found")
        raw, signature = found
        return {
            "component": component,
            "version": version,
            "url": f"{base_url.rstrip('/')}/api/v1/fleet/packages/{component}/{version}/payload",
            "manifest": base64.b64encode(raw).decode(),
            "signature": base64.b64encode(signature).decode(),
        }
