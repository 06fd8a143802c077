"""`stance annotations import|export|stats|audit`.

Every command first imports new seed batches (paths.annotations_dir), like the service
does on start, so the store is the one source of training data whichever starts first.
"""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path

import typer

from service.cli.options import ConfigOpt, _fail, _settings
from training.annotation_formats import FORMATS
from training.annotations import AnnotationError


def _store(config: Path | None):  # -> AnnotationStore (imported lazily: keeps `stance --help` fast)
    from service.store.repository import AnnotationStore

    store = AnnotationStore(_settings(config))
    for report in store.ensure_seeds():
        if report.added:
            typer.echo(f"seed batch {report.batch}: {report.added} added", err=True)
        elif report.skipped and not report.unchanged:
            typer.secho(f"warning: seed file {report.file} rejected:", fg=typer.colors.YELLOW, err=True)
            for p in report.skipped:
                typer.echo(f"  {p}", err=True)
    return store


annotations = typer.Typer(help="The annotation store: import, export, stats.", no_args_is_help=True)


@annotations.command("import")
def import_(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="JSONL, Label Studio JSON or Argilla export"),
    fmt: str = typer.Option("auto", "--format", "-f", help=f"one of {', '.join(FORMATS)}"),
    batch: str | None = typer.Option(None, help="batch name (default: the file name without extension)"),
    annotator: str | None = typer.Option(None, help="annotator for records that do not name one (default: you)"),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="import the valid records, list the others"),
    question: str | None = typer.Option(None, help="Label Studio control / Argilla question holding the labels"),
    config: Path | None = ConfigOpt,
) -> None:
    """Import a file as one transaction: all records or none (unless --skip-invalid)."""
    if fmt not in FORMATS:
        _fail(f"--format must be one of {', '.join(FORMATS)}", 2)
    store = _store(config)
    try:
        report = store.import_file(file, fmt, batch, annotator or getpass.getuser(), skip_invalid, question)
    except AnnotationError as exc:
        typer.secho(f"error: {file} rejected, nothing imported:", fg=typer.colors.RED, err=True)
        for p in exc.problems:
            typer.echo(f"  {p}", err=True)
        raise typer.Exit(1) from None
    for p in report.skipped:
        typer.echo(f"skipped {p}", err=True)
    if report.already_imported:
        typer.echo(f"{file}: already imported into batch {report.batch}; nothing to do")
    else:
        typer.echo(
            f"{file} ({report.format}) -> batch {report.batch}: {report.added} added, "
            f"{report.unchanged} unchanged, {len(report.skipped)} skipped"
        )


@annotations.command("export")
def export(
    output: Path | None = typer.Option(None, "--output", "-o", help="file or folder to write (default: stdout, jsonl)"),
    format: str = typer.Option("jsonl", "--format", "-f", help="jsonl | parquet | hf (a datasets save_to_disk folder)"),
    config: Path | None = ConfigOpt,
) -> None:
    """The training snapshot: the latest labels of every statement, as project JSONL, Parquet
    or a `datasets` folder (`datasets.load_from_disk`), which Argilla and the HF tools import."""
    if format not in ("jsonl", "parquet", "hf"):
        _fail(f"unknown --format {format!r}; use jsonl, parquet or hf")
    if format != "jsonl" and output is None:
        _fail(f"--format {format} needs --output")
    if format == "hf" and output is not None and output.exists():
        _fail(f"{output}: exists; a datasets folder is written to a new path")
    store = _store(config)
    if output is not None and format != "jsonl":
        from training.hf_data import write_snapshot

        n = write_snapshot(store.snapshot(), output, format)  # type: ignore[arg-type]
        typer.echo(f"{n} statements -> {output} ({format})", err=True)
        return
    if output is not None:
        n = store.export_jsonl(output)
        typer.echo(f"{n} statements -> {output}", err=True)
        return
    for ann in store.snapshot():
        sys.stdout.write(json.dumps(ann.to_json(), ensure_ascii=False) + "\n")


@annotations.command("stats")
def stats(
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
    config: Path | None = ConfigOpt,
) -> None:
    """Per-label counts (latest labels), per-batch counts, annotators, conflicts."""
    data = _store(config).stats()
    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    typer.echo(f"statements: {data['statements']}   annotations (history): {data['annotations']}")
    typer.echo("labels:")
    for name, n in data["labels"].items():
        typer.echo(f"  {name:<24} {n:>6}")
    typer.echo("batches:")
    for b in data["batches"]:
        typer.echo(f"  {b['name']:<32} {b['kind']:<7} {b['annotations']:>6} annotations, {b['latest']:>6} current")
    typer.echo("annotators: " + ", ".join(f"{k} ({v})" for k, v in data["annotators"].items()))
    typer.echo(f"conflicts between annotators: {data['conflicts']}")
    for c in data["conflict_list"]:
        typer.echo(f"  #{c['statement_id']} {c['text'][:70]!r}")
        for who, labels in c["by_annotator"].items():
            typer.echo(f"      {who}: {labels or ['none']}")


@annotations.command("audit")
def audit(
    scores: str = typer.Option("bundle", help="bundle: the current model's CV scores; tfidf: a TF-IDF CV run now"),
    limit: int = typer.Option(50, min=1, help="suspects shown (the files get all of them)"),
    output: Path | None = typer.Option(None, "--output", "-o", help="write the whole ranking as JSON Lines"),
    label_studio: Path | None = typer.Option(None, "--label-studio", help="write a Label Studio task file for review"),
    config: Path | None = ConfigOpt,
) -> None:
    """Likely label errors, likeliest first, from out-of-fold scores (cleanlab). Changes nothing."""
    from service.store.audit import AuditUnavailable, run_audit
    from training.audit import label_studio_tasks

    if scores not in ("bundle", "tfidf"):
        _fail(f"--scores must be bundle or tfidf, not {scores!r}", 2)
    settings = _settings(config)
    try:
        report = run_audit(settings, _store(config), scores)  # type: ignore[arg-type]
    except AuditUnavailable as exc:
        _fail(str(exc), 1)
    summary = report.to_json(limit)
    typer.echo(
        f"{summary['n_audited']} of {summary['n_annotations']} annotations audited with {summary['scores_from']}; "
        f"{summary['n_flagged']} flagged as likely label errors",
        err=True,
    )
    for s in summary["suspects"]:
        typer.echo(
            f"{s['rank']:>4}  q={s['quality']:.3f}{' *' if s['flagged'] else '  '} {s['labels'] or ['none']} -> "
            f"{s['suggested_labels'] or ['none']}  [{s['source']}] {s['text'][:120]}"
        )
    if output:
        output.write_text("".join(json.dumps(x.to_json(), ensure_ascii=False) + "\n" for x in report.suspects))
    if label_studio:
        label_studio.write_text(
            json.dumps(
                label_studio_tasks(report.suspects, report.model_version or "tfidf"), ensure_ascii=False, indent=1
            )
        )


def register(app: typer.Typer) -> None:
    """Add the annotation-store commands to the CLI."""
    app.add_typer(annotations, name="annotations")
