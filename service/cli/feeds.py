"""`stance feeds add|list|poll|remove`: manage subscriptions in the store's database, and
poll from the command line (scoring with the registry's current bundle, no service
needed). A running service polls on its own; `poll` is for a first fill or a check."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import typer

from service.cli.options import ConfigOpt, ModelOpt, _fail, _settings
from service.monitor.subscriptions import FeedConflict, FeedInvalid, FeedNotFound, Feeds

app = typer.Typer(
    help="Subscribed feeds: polled by the service, scored and stored (docs/MONITORING.md)", no_args_is_help=True
)


def _feeds(config: Path | None) -> Feeds:
    from service.monitor.wiring import ensure_tables
    from service.store.engine import open_database

    settings = _settings(config)
    db = open_database(settings)
    ensure_tables(db)
    return Feeds(db, settings.monitor)


def _find(feeds: Feeds, feed: str) -> int:
    try:
        return feeds.get_row(int(feed)).id if feed.isdigit() else feeds.by_name(feed).id
    except FeedNotFound:
        _fail(f"no feed {feed!r} (give its name or id; see `stance feeds list`)")
        raise


@app.command("add")
def add(
    name: str = typer.Argument(..., help="unique name of the subscription"),
    url: str = typer.Argument(..., help="http(s) URL of an RSS / Atom / JSON Lines feed"),
    outlet: str = typer.Option(..., "--outlet", help="the outlet its trends are grouped by"),
    interval: int | None = typer.Option(None, "--interval", help="seconds between polls"),
    format: str = typer.Option("auto", "--format", help="auto | rss | atom | jsonl | text"),
    config: Path | None = ConfigOpt,
) -> None:
    """Subscribe to a feed."""
    try:
        typer.echo(json.dumps(_feeds(config).create(name, outlet, url, interval, format)))
    except (FeedInvalid, FeedConflict) as exc:
        _fail(str(exc))


@app.command("list")
def list_(config: Path | None = ConfigOpt) -> None:
    """Subscribed feeds with their poll state (JSON Lines)."""
    for feed in _feeds(config).list():
        typer.echo(json.dumps(feed))


@app.command("remove")
def remove(feed: str = typer.Argument(..., help="name or id"), config: Path | None = ConfigOpt) -> None:
    """Unsubscribe; stored articles stay (the outlet's trends keep their history)."""
    feeds = _feeds(config)
    feeds.delete(_find(feeds, feed))
    typer.echo(f"removed feed {feed}", err=True)


@app.command("poll")
def poll(
    feed: list[str] = typer.Argument(None, help="names or ids (default: every enabled feed)"),
    model: str | None = ModelOpt,
    config: Path | None = ConfigOpt,
) -> None:
    """Poll feeds now and print each poll record. Exit code 1 if a poll failed."""
    from service.monitor.model import BundleModel
    from service.monitor.poller import ERROR, PollContext, poll_feed
    from service.scoring.bundle_loader import load_served_bundle
    from training.bundle import BundleError

    feeds = _feeds(config)
    settings = _settings(config)
    ids = [_find(feeds, f) for f in feed] if feed else [f["id"] for f in feeds.list() if f["enabled"]]
    try:
        bundle = load_served_bundle(settings, model)
    except BundleError as exc:
        _fail(str(exc))
        raise

    async def run() -> list[dict]:
        async with httpx.AsyncClient() as client:
            ctx = PollContext(feeds.db, settings, BundleModel(bundle), client)
            return [await poll_feed(ctx, i) for i in ids]

    results = asyncio.run(run())
    for result in results:
        typer.echo(json.dumps(result))
    if any(r["status"] == ERROR for r in results):
        raise typer.Exit(1)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="feeds")
