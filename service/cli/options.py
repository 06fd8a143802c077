"""What every `stance` command module shares: the --config and --model options, how a
command fails (a red message and an exit code, never a traceback), and loading settings."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from service.settings import Settings, load_service_settings
from training.settings import SettingsError

ConfigOpt = typer.Option(None, "--config", "-c", help="YAML layered over configs/default.yaml")
ModelOpt = typer.Option(None, "--model", "-m", help="model version (default: the registry's current)")


def _fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _settings(config: Path | None) -> Settings:
    """Load the config once for this command; everything below gets it passed in."""
    try:
        settings = load_service_settings(config)
    except SettingsError as exc:
        _fail(str(exc))
        raise  # unreachable; keeps type checkers happy
    if not settings.service.spin_wait:
        # torch's OpenMP threads busy-wait by default; on 2 shared cores that made the torch
        # backend 4x slower (measured). Read once when torch loads, so set it before.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return settings
