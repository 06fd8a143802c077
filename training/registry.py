"""The model registry: `models/<version>/` bundles plus a `CURRENT` pointer file.

Training registers new bundles; the service reads the pointer, and promotion or
rollback rewrites it atomically (write a temp file, then rename), so a reader sees
either the old version or the new one, never a torn file.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from training.bundle import BundleError, read_meta, read_metrics, verify_manifest

POINTER = "CURRENT"
HISTORY = "history.jsonl"


@dataclass(frozen=True)
class Registry:
    root: Path

    def new_version(self) -> str:
        """Sortable and unique: UTC time plus a short random suffix."""
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        return f"v{stamp}-{secrets.token_hex(2)}"

    def path(self, version: str) -> Path:
        if not version or "/" in version or version.startswith("."):
            raise BundleError(f"invalid model version {version!r}")
        return self.root / version

    def versions(self) -> list[str]:
        """Complete bundles only (hidden temp folders of unfinished writes are skipped)."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and not p.name.startswith(".") and (p / "bundle.json").is_file()
        )

    def current(self) -> str | None:
        pointer = self.root / POINTER
        if not pointer.is_file():
            return None
        version = pointer.read_text().strip()
        return version or None

    def resolve(self, version: str | None = None) -> Path:
        """The bundle folder for `version`, or the current one; a clear error if none."""
        chosen = version or self.current()
        if chosen is None:
            raise BundleError(f"no current model in {self.root}; train one with `stance train`")
        path = self.path(chosen)
        if not path.is_dir():
            known = ", ".join(self.versions()) or "none"
            raise BundleError(f"unknown model version {chosen!r} (registry has: {known})")
        return path

    def set_current(self, version: str, reason: str = "", verified: bool = False) -> None:
        """Point CURRENT at a verified bundle and log the change (`verified`: the caller has
        just loaded the bundle, which checked its manifest; not hashed a second time)."""
        path = self.resolve(version)
        if not verified:
            verify_manifest(path)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{POINTER}.{secrets.token_hex(4)}"
        tmp.write_text(version + "\n")
        os.replace(tmp, self.root / POINTER)
        entry = {
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "current": version,
            "reason": reason,
        }
        with (self.root / HISTORY).open("a") as fh:
            fh.write(json.dumps(entry) + "\n")

    def describe(self, version: str) -> dict[str, Any]:
        path = self.path(version)
        meta = read_meta(path)
        return {
            "version": version,
            "created": meta.get("created"),
            "data": meta.get("data", {}),
            "status": meta.get("status", "registered"),
            "metrics": read_metrics(path),
            "current": version == self.current(),
        }

    def history(self) -> list[dict[str, Any]]:
        path = self.root / HISTORY
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
