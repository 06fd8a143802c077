"""Loading a bundle the way the service runs it: one place for the service, the CLI, the
benchmark and promotion (below the app, so nothing imports the app to get a model)."""

from __future__ import annotations

from pathlib import Path

from service.settings import Settings
from training.bundle import Bundle, load_bundle
from training.registry import Registry


def load_served_bundle(settings: Settings, version: str | None = None) -> Bundle:
    """The registry's current bundle (or `version`), with the configured thread count.

    The backend is the bundle's own default (int8 ONNX when it agreed with fp32 at
    training time) unless the config forces `inference.backend: torch`."""
    return open_bundle(Registry(settings.paths.models_dir).resolve(version), settings)


def open_bundle(path: Path, settings: Settings) -> Bundle:
    """Load a bundle folder the way the service runs it (threads, batch size, spinning)."""
    inference = settings.inference
    return load_bundle(
        path,
        inference,
        backend="torch" if inference.backend == "torch" else None,
        threads=inference.threads,
        batch_size=inference.batch_size,
        spin_wait=settings.service.spin_wait,
    )
