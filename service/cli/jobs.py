"""`stance jobs`: where retrain jobs are, read from the store the service writes them to."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer

from service.cli.options import ConfigOpt, _settings

jobs = typer.Typer(help="Retrain jobs: list, show (with phase, percent and ETA), watch.", no_args_is_help=True)
WATCH_INTERVAL_S = 1.0


def _manager(config: Path | None):
    from service.retrain.jobs import JobManager
    from service.retrain.promotion import ModelAdmin

    settings = _settings(config)
    return JobManager(settings, ModelAdmin(settings))


def progress_line(job: dict[str, Any]) -> str:
    """One line a person reads: state, phase k of n, step, overall percent, ETA."""
    p = job.get("progress")
    if not p:
        return f"{job['id']}  {job['state']}"
    eta = f", ETA {p['eta_s']:.0f}s" if p.get("eta_s") is not None and job["state"] == "running" else ""
    return (
        f"{job['id']}  {job['state']}  phase {p['phase_number']}/{p['phases']} {p['phase']} "
        f"(step {p['step']}/{p['steps']})  {p['percent']:.1f}%{eta}"
    )


@jobs.command("list")
def jobs_list(limit: int = typer.Option(20, min=1), config: Path | None = ConfigOpt) -> None:
    """The newest jobs, one line each."""
    for job in _manager(config).list(limit):
        typer.echo(progress_line(job))


@jobs.command("show")
def jobs_show(
    job_id: str,
    watch: bool = typer.Option(False, "--watch", help="follow until the job ends"),
    as_json: bool = typer.Option(False, "--json"),
    config: Path | None = ConfigOpt,
) -> None:
    """One job: progress (phase, step k of n, percent, ETA), then its gate verdict or error."""
    from service.retrain.job_states import ACTIVE
    from service.retrain.jobs import JobNotFound

    manager = _manager(config)
    try:
        job = manager.get(job_id)
        while watch and job["state"] in ACTIVE:
            typer.echo(progress_line(job))
            time.sleep(WATCH_INTERVAL_S)
            job = manager.get(job_id)
    except JobNotFound:
        typer.secho(f"error: no job {job_id!r}; `stance jobs list` shows them", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(job, indent=2, default=str))
        return
    typer.echo(progress_line(job))
    if job.get("gate"):
        typer.echo(f"gate: {'promoted' if job['gate'].get('promote') else 'rejected'}: {job['gate'].get('reason')}")
    if job.get("error"):
        typer.echo(f"error: {job['error']}")


def register(app: typer.Typer) -> None:
    app.add_typer(jobs, name="jobs")
