"""Training's commands: segment, train, evaluate, experiments. Mounted by `service.cli`
under `stance`; also runnable alone as `python -m training.cli` (a retrain job's subprocess
runs `python -m training.cli train ...`, so training never starts through the service)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import typer

from training.settings import ROOT_ENV, Settings, SettingsError, load_settings


Loader = Callable[[Path | None], Settings]


def _settings(ctx: typer.Context, config: Path | None) -> Settings:
    """The command's settings, read by the loader the app was built with: training's own,
    or (under `stance`) the service's, which validates the service's sections too."""
    load: Loader = ctx.find_root().obj or load_settings
    try:
        return load(config)
    except SettingsError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


ConfigOpt = typer.Option(None, "--config", "-c", help="YAML layered over configs/default.yaml")
RootOpt = typer.Option(
    None, "--root", envvar=ROOT_ENV,
    help="project folder holding configs/, seeds/, models/, data/ (default: the current folder)",
)


def segment(
    ctx: typer.Context,
    inputs: list[Path] = typer.Argument(..., help="article .txt files or folders of them"),
    output: Path | None = typer.Option(None, "--output", "-o", help="JSONL out (default: stdout)"),
    include_boilerplate: bool = typer.Option(False, help="also emit flagged boilerplate"),
    config: Path | None = ConfigOpt,
) -> None:
    """Split articles into statements (JSONL: text, source, index, boilerplate)."""
    from training.segment import segment_file

    settings = _settings(ctx, config)
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


def _fail(message: str, code: int = 1) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def train(
    ctx: typer.Context,
    data: list[Path] = typer.Option(None, "--data", "-d", help="annotation JSONL files (default: every *.jsonl in paths.annotations_dir)"),
    promote: bool = typer.Option(True, "--promote/--no-promote", help="make the new bundle the current model"),
    config: Path | None = ConfigOpt,
) -> None:
    """Fine-tune, cross-validate, and register a model bundle. The last stdout line is JSON:
    {"version", "path", "metrics"}."""
    from training.train import load_training_data, train_bundle

    settings = _settings(ctx, config)
    try:
        annotations, files = load_training_data(settings, data)
        result = train_bundle(settings, annotations, files, promote=promote)
    except ValueError as exc:  # AnnotationError included: every problem, with file and line
        _fail(str(exc))
    summary = {
        "cv_macro_f1": result.metrics["cv"]["transformer"]["macro_f1"],
        "holdout_macro_f1": (result.metrics.get("holdout", {}).get("transformer") or {}).get("macro_f1"),
        "default_backend": "onnx" if result.metrics["int8"]["int8_ok"] else "torch",
    }
    typer.echo(json.dumps({"version": result.version, "path": str(result.path), "metrics": summary}))


def evaluate(
    ctx: typer.Context,
    data: list[Path] = typer.Option(..., "--data", "-d", help="annotation JSONL file(s) to score against"),
    model: str | None = typer.Option(None, "--model", "-m", help="model version (default: current)"),
    backend: str | None = typer.Option(None, help="onnx or torch (default: the bundle's)"),
    output: Path | None = typer.Option(None, "--output", "-o", help="also write the metrics as JSON here"),
    config: Path | None = ConfigOpt,
) -> None:
    """Per-label precision/recall/F1 and micro/macro F1 with bootstrap 95% intervals."""
    from training.annotations import load_annotations
    from training.bundle import BundleError, load_bundle
    from training.evaluate import evaluate_bundle, format_report
    from training.registry import Registry

    settings = _settings(ctx, config)
    try:
        annotations = load_annotations(data, settings.labels).annotations
        bundle = load_bundle(Registry(settings.paths.models_dir).resolve(model), settings.inference, backend=backend)
        metrics = evaluate_bundle(bundle, annotations, settings)
    except (BundleError, ValueError) as exc:  # ValueError covers AnnotationError
        _fail(str(exc))
    typer.echo(format_report(metrics))
    if output:
        output.write_text(json.dumps(metrics, indent=2))


def experiments(
    ctx: typer.Context,
    variants: str = typer.Option(
        "finetune,finetune_lr5e-5,finetune_cls_lr5e-5,finetune_unweighted_lr5e-5,embed_logreg,setfit",
        help="comma-separated variant names (see training/experiments.py)",
    ),
    output: Path = typer.Option(Path("reports/experiments.json"), "--output", "-o"),
    config: Path | None = ConfigOpt,
) -> None:
    """Compare training ideas in grouped CV on the same folds; the model card shows the table."""
    import sys

    from training.experiments import VARIANTS, run_experiments, write_report
    from training.train import load_training_data

    settings = _settings(ctx, config)
    names = [v.strip() for v in variants.split(",") if v.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        _fail(f"unknown variant(s) {unknown}; choose from {sorted(VARIANTS)}", 2)
    annotations, _ = load_training_data(settings)
    command = "stance experiments " + " ".join(sys.argv[2:])
    report = write_report(run_experiments(settings, annotations, names, command.strip()), output)
    for row in (r for r in report["variants"] if r["name"] in names):
        m = row["metrics"]
        lo, hi = m["macro_f1_ci"]
        typer.echo(
            f"{row['name']:<22} macro-F1 {m['macro_f1']:.3f} [{lo:.3f}, {hi:.3f}]  "
            f"micro-F1 {m['micro_f1']:.3f}  {row['seconds']:.0f}s"
        )
    typer.echo(report["conclusion"])


def build_app(load: Loader = load_settings) -> typer.Typer:
    """Training's commands; `load` reads each command's settings (see `_settings`)."""

    def root_option(ctx: typer.Context, root: Path | None = RootOpt) -> None:
        """Stance classification of statements on Ukraine's path into NATO."""
        ctx.obj = load
        if root is not None:
            # The one place the root is chosen: every command's settings (and a retrain
            # job's subprocess, which inherits the environment) read it from here.
            os.environ[ROOT_ENV] = str(root.resolve())

    app = typer.Typer(
        help="Stance classification of statements on Ukraine's path into NATO.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    app.callback()(root_option)
    app.command()(segment)
    app.command()(train)
    app.command()(evaluate)
    app.command()(experiments)
    return app


if __name__ == "__main__":
    build_app()()
