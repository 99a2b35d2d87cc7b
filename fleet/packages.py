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
from common.wire import delta as delta_wire
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

    def delta_folder(self, component: str, version: str, base: str) -> Path:
        self.folder(component, base)  # validates the base as a path-safe name too
        return self.folder(component, version) / "deltas" / base

    def publish_delta(self, component: str, version: str, base: str) -> dict[str, Any]:
        """Build and sign the delta from published ``base`` to published ``version``."""
        paths = [self.folder(component, v) / "payload" for v in (base, version)]
        for path, v in zip(paths, (base, version), strict=True):
            if not path.exists():
                raise LookupError(f"package {component} {v} not found")
        old, new = (p.read_bytes() for p in paths)
        payload = delta_wire.build(component, base, old, version, new)
        manifest = describe(component, version, payload)
        folder = self.delta_folder(component, version, base)
        if folder.exists():
            raise PackageExists(f"{component} {version} delta from {base} is already published")
        tmp = folder.with_name(f".{base}.tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / "payload").write_bytes(payload)
        (tmp / "manifest.json").write_bytes(manifest.to_bytes())
        (tmp / "signature").write_bytes(sign(self.key, manifest))
        (tmp / "base_sha256").write_text(delta_wire.parse(payload).base_sha256)
        os.replace(tmp, folder)
        return {"from": base, "size": len(payload), "full_size": len(new)}

    def _deltas(self, component: str, version: str, base_url: str) -> list[dict[str, Any]]:
        out = []
        root = self.folder(component, version) / "deltas"
        for folder in sorted(root.iterdir()) if root.exists() else []:
            if not (folder / "signature").exists():
                continue
            base = folder.name
            out.append(
                {
                    "from": base,
                    "from_sha256": (folder / "base_sha256").read_text(),
                    "url": f"{base_url.rstrip('/')}/api/v1/fleet/packages/{component}/{version}"
                    f"/deltas/{base}/payload",
                    "manifest": base64.b64encode((folder / "manifest.json").read_bytes()).decode(),
                    "signature": base64.b64encode((folder / "signature").read_bytes()).decode(),
                }
            )
        return out

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
            # Patch releases: a terminal whose installed slot is a delta's base uses it.
            **({"deltas": d} if (d := self._deltas(component, version, base_url)) else {}),
        }
