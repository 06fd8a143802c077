"""Training's commands: segment, train, evaluate. Mounted by `service.cli` under `stance`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from training.settings import SettingsError, load_settings


def _settings(config: Path | None):
    try:
        return load_settings(config)
    except SettingsError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


ConfigOpt = typer.Option(None, "--config", "-c", help="YAML layered over configs/default.yaml")


def segment(
    inputs: list[Path] = typer.Argument(..., help="article .txt files or folders of them"),
    output: Path | None = typer.Option(None, "--output", "-o", help="JSONL out (default: stdout)"),
    include_boilerplate: bool = typer.Option(False, help="also emit flagged boilerplate"),
    config: Path | None = ConfigOpt,
) -> None:
    """Split articles into statements (JSONL: text, source, index, boilerplate)."""
    from training.segment import segment_file

    settings = _settings(config)
    files: list[Path] = []
    for item in inputs:
        if item.is_dir():
            files.extend(sorted(item.glob("*.txt")))
        elif item.is_file():
            files.append(item)
        else:
            typer.secho(f"error: {item}: no such file or folder", fg=typer.colors.RED, err=True)
            raise typer.Exit(2)
    out = output.open("w", encoding="utf-8") if output else None
    try:
        for path in files:
            try:
                statements = segment_file(path, settings.segmentation)
            except UnicodeDecodeError:
                typer.secho(f"error: {path}: not UTF-8 text", fg=typer.colors.RED, err=True)
                raise typer.Exit(1) from None
            for st in statements:
                if st.boilerplate and not include_boilerplate:
                    continue
                row = {"text": st.text, "source": path.stem, "index": st.index, "boilerplate": st.boilerplate}
                line = json.dumps(row, ensure_ascii=False)
                if out:
                    out.write(line + "\n")
                else:
                    typer.echo(line)
    finally:
        if out:
            out.close()


def build_app() -> typer.Typer:
    app = typer.Typer(
        help="Stance classification of statements on Ukraine's path into NATO.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    app.callback()(_root)
    app.command()(segment)
    return app


def _root() -> None:
    """Stance classification of statements on Ukraine's path into NATO."""
