"""Which configuration a retrain runs with: the service's own settings with
`configs/<name>.yaml` layered on (the same layering as `load_settings`). Only names of files
in configs/ are accepted, never a path from a request."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from service.settings import Settings
from training.settings import DEFAULT_CONFIG_NAME, layered_config

DEFAULT = DEFAULT_CONFIG_NAME
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}$")  # a file name in configs/, never a path


class ConfigNotFound(ValueError):
    pass


def available_configs(configs_dir: Path) -> list[str]:
    return [DEFAULT] + sorted(p.stem for p in configs_dir.glob("*.yaml") if p.stem != DEFAULT)


def effective_config(settings: Settings, name: str) -> dict[str, Any]:
    """The service's own settings with configs/<name>.yaml layered on top: a retrain uses the
    service's paths and base model, and the named file's training knobs. Only names of files
    in configs/ are accepted (never a path from the request)."""
    data = settings.model_dump(mode="json")
    data["auth"]["token"] = None  # never written to a job folder (training needs no secret)
    if name == DEFAULT:
        return data
    path = settings.configs_dir / f"{name}.yaml"
    if not _NAME.match(name) or not path.is_file():
        raise ConfigNotFound(f"unknown config {name[:100]!r}; available: {available_configs(settings.configs_dir)}")
    merged = layered_config(data, path, settings.root)  # the same layering as load_settings
    merged.setdefault("auth", {})["token"] = None  # never write a secret into a job folder
    return merged
