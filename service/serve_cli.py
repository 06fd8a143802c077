"""`stance serve`, `stance score` (statements, feeds, folders of articles) and `stance bench`."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the service's scoring commands to the CLI."""
