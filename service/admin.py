"""Annotation store, retraining and registry routes (issue 4), installed into the app."""

from __future__ import annotations

from fastapi import FastAPI

from training.settings import Settings


def install(app: FastAPI, settings: Settings) -> None:
    """Add the write/admin API and its start-up work (store creation, seed import) to `app`."""
