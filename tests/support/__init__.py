"""Helpers shared by the tests (no tests here: pytest collects only test_*.py files).

`project_settings()` is the tests' entry point to the configuration: the repository's own
configs/default.yaml, read once, whatever the current folder.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from service.settings import Settings, load_service_settings
from training.annotations import Annotation, annotation_files, load_annotations

PROJECT = Path(__file__).resolve().parents[2]


@lru_cache(maxsize=1)
def project_settings() -> Settings:
    return load_service_settings(root=PROJECT)


def seed_subset(n_sources: int) -> list[Annotation]:
    """The seed annotations of the first `n_sources` source documents (small training runs)."""
    settings = project_settings()
    anns = load_annotations(annotation_files(settings.paths.annotations_dir), settings.labels).annotations
    sources = sorted({a.source for a in anns})[:n_sources]
    return [a for a in anns if a.source in sources]
