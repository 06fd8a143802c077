"""Where the base encoder lives: inside an installed PyPI package, never a model hub."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from training.settings import BaseModelSettings


class BaseModelMissing(RuntimeError):
    pass


def base_model_dir(settings: BaseModelSettings) -> Path:
    if settings.path is not None:
        if not (Path(settings.path) / "config.json").is_file():
            raise BaseModelMissing(f"base_model.path {settings.path} has no config.json")
        return Path(settings.path)
    spec = importlib.util.find_spec(settings.package)
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelMissing(
            f"base model package '{settings.package}' is not installed; "
            "run `pip install -c constraints.txt -e .` (see README)"
        )
    folder = Path(list(spec.submodule_search_locations)[0]) / settings.subfolder
    if not (folder / "config.json").is_file():
        raise BaseModelMissing(f"{folder} has no config.json; reinstall '{settings.package}'")
    return folder
