"""`stance annotations import|export|stats`: the annotation store from the command line."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the annotation-store commands to the CLI."""
