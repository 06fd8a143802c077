"""`stance serve`, `stance score` (statements, feeds, folders of articles) and `stance bench`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from service.cli.options import ConfigOpt, ModelOpt, _fail, _settings
from service.settings import Settings


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Connection limits from settings: idle keep-alive connections and connections that
    never finish their headers are closed (service.keep_alive_s, service.header_timeout_s)."""
    from service.api.http_protocol import with_header_timeout

    return {
        "http": with_header_timeout(settings.service.header_timeout_s),
        "timeout_keep_alive": settings.service.keep_alive_s,
        "access_log": False,  # per-request lines cost throughput; /metrics has the counts
    }


def serve(
    host: str | None = typer.Option(None, help="bind address (default: service.host)"),
    port: int | None = typer.Option(None, help="port (default: service.port)"),
    model: str | None = ModelOpt,
    config: Path | None = ConfigOpt,
    log_level: str = typer.Option("info", help="uvicorn log level"),
) -> None:
    """Run the HTTP scoring service (OpenAPI docs at /docs). Trains a first model if the
    registry has none."""
    import uvicorn

    from service.app import create_app
    from training.bundle import BundleError
    from training.registry import Registry

    settings = _settings(config)
    registry = Registry(settings.paths.models_dir)
    if model is None and registry.current() is None:
        typer.echo(
            f"no current model in {registry.root}: training one first (about 10 minutes on this machine) ...",
            err=True,
        )
        from training.train import train_default

        version = train_default(settings)
        typer.echo(f"trained and promoted model {version}", err=True)
    if model is not None:  # a named version must exist; a broken CURRENT falls back at start
        try:
            registry.resolve(model)
        except BundleError as exc:
            _fail(str(exc))
    uvicorn.run(
        create_app(settings, model),
        host=host or settings.service.host,
        port=port or settings.service.port,
        log_level=log_level,
        **uvicorn_options(settings),
    )


def score(
    input: Path = typer.Argument(..., help="JSONL of statements, an RSS/Atom/text feed, or a folder of .txt"),
    output: Path = typer.Option(..., "--output", "-o", help="JSONL to write"),
    model: str | None = ModelOpt,
    format: str = typer.Option("auto", "--format", "-f", help="auto | jsonl | rss | atom | text | dir"),
    config: Path | None = ConfigOpt,
) -> None:
    """Score statements or articles offline. Exit code 1 if any line or item failed
    (each reported on stderr with its line number), 2 if the input cannot be read."""
    from service.scoring.bundle_loader import load_served_bundle
    from service.scoring.feeds import FeedError
    from service.scoring.score_file import score_file
    from training.bundle import BundleError

    if format not in ("auto", "jsonl", "rss", "atom", "text", "dir"):
        _fail(f"unknown --format {format!r}; use auto, jsonl, rss, atom, text or dir")
    if not input.exists():
        _fail(f"{input}: no such file or folder")
    settings = _settings(config)
    try:
        bundle = load_served_bundle(settings, model)
    except BundleError as exc:
        _fail(str(exc))
    try:
        outcome = score_file(input, output, format, bundle, settings)  # type: ignore[arg-type]
    except FeedError as exc:
        _fail(f"{input}: {exc}")
    typer.echo(
        json.dumps(
            {
                "output": str(output),
                "rows": outcome.written,
                "failed": outcome.failures,
                "model_version": bundle.version,
            }
        ),
        err=True,
    )
    if outcome.failures:
        raise typer.Exit(1)


BENCH_PARTS = ("all", "offline", "http", "fairness", "swaps")


def bench(
    model: str | None = ModelOpt,
    bundle_path: Path | None = typer.Option(None, "--bundle", help="a bundle folder instead of a registry version"),
    clients: int = typer.Option(16, help="concurrent HTTP clients"),
    seconds: float = typer.Option(20.0, help="duration of the HTTP load test"),
    output: Path | None = typer.Option(None, "--output", "-o", help="also write the JSON here"),
    only: str = typer.Option("all", help="all | offline | http | fairness | swaps"),
    swaps: int = typer.Option(50, help="hot swaps measured by the swaps part"),
    config: Path | None = ConfigOpt,
) -> None:
    """Measure offline throughput (vs a plain transformers pipeline), HTTP latency under
    concurrent clients, and the service's peak memory. Prints JSON."""
    from service.bench.run import run_bench
    from training.bundle import BundleError
    from training.registry import Registry

    if only not in BENCH_PARTS:
        _fail(f"--only must be one of {', '.join(BENCH_PARTS)}; got {only!r}")
    settings = _settings(config)
    try:
        path = bundle_path or Registry(settings.paths.models_dir).resolve(model)
    except BundleError as exc:
        _fail(str(exc))
    result = run_bench(settings, Path(path), clients=clients, seconds=seconds, only=only, swaps=swaps)
    text = json.dumps(result, indent=2)
    typer.echo(text)
    if output:
        output.write_text(text + "\n")


def register(app: typer.Typer) -> None:
    """Add the service's scoring commands to the CLI."""
    app.command()(serve)
    app.command()(score)
    app.command()(bench)
