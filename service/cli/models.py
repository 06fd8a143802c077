"""`stance models list|promote|rollback`: the registry's CURRENT pointer moves; a running
service follows it within `jobs.watch_registry_s` seconds."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from service.cli.options import ConfigOpt, _fail, _settings

models = typer.Typer(help="The model registry: list, promote, roll back.", no_args_is_help=True)


def _admin(config: Path | None):
    from service.retrain.promotion import ModelAdmin

    return ModelAdmin(_settings(config))


@models.command("list")
def models_list(
    as_json: bool = typer.Option(False, "--json"),
    config: Path | None = ConfigOpt,
) -> None:
    """Versions with status, held-out metric and which one is current."""
    data = _admin(config).list()
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
        return
    for m in data["models"]:
        holdout = (m.get("metrics") or {}).get("holdout") or {}
        score = (holdout.get("transformer") or holdout).get("macro_f1")
        mark = "*" if m["current"] else " "
        typer.echo(
            f"{mark} {m['version']:<32} {m['status']:<12} macro_f1={score if score is not None else '-'}"
            f"  {m.get('reason') or ''}"
        )


@models.command("promote")
def models_promote(version: str, config: Path | None = ConfigOpt) -> None:
    """Make VERSION current (a running service follows within jobs.watch_registry_s)."""
    from service.retrain.promotion import PromotionError

    try:
        result = _admin(config).promote(version, "manual promotion via CLI")
    except PromotionError as exc:
        _fail(str(exc), 1)
    typer.echo(f"current: {result['current']} (was {result['previous']})")


@models.command("rollback")
def models_rollback(
    to: str | None = typer.Option(None, "--to", help="an earlier version (default: the previous one)"),
    config: Path | None = ConfigOpt,
) -> None:
    """Serve the previous (or a named earlier) version again."""
    from service.retrain.promotion import PromotionError

    try:
        result = _admin(config).rollback(to)
    except PromotionError as exc:
        _fail(str(exc), 1)
    typer.echo(f"current: {result['current']} (was {result['previous']})")


def register(app: typer.Typer) -> None:
    """Add the registry commands to the CLI."""
    app.add_typer(models, name="models")
