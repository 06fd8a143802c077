"""Training's commands: segment, train, evaluate, experiments. Mounted by `service.cli.main`
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
    None,
    "--root",
    envvar=ROOT_ENV,
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
    data: list[Path] = typer.Option(
        None, "--data", "-d", help="annotation JSONL files (default: every *.jsonl in paths.annotations_dir)"
    ),
    promote: bool = typer.Option(True, "--promote/--no-promote", help="make the new bundle the current model"),
    quick: bool = typer.Option(
        False, "--quick", help="no CV: the final fit only, reusing the current bundle's decision policy and CV figures"
    ),
    reuse_from: str | None = typer.Option(
        None, "--reuse-from", help="with --quick: the bundle version to reuse (default: current)"
    ),
    config: Path | None = ConfigOpt,
) -> None:
    """Fine-tune, cross-validate, and register a model bundle. The last stdout line is JSON:
    {"version", "path", "metrics"}."""
    from training.train import load_training_data, train_bundle

    settings = _settings(ctx, config)
    if reuse_from and not quick:
        _fail("--reuse-from goes with --quick", 2)
    if quick:
        settings = settings.with_overrides(training={"cross_validate": False})
    try:
        annotations, files = load_training_data(settings, data)
        result = train_bundle(settings, annotations, files, promote=promote, reuse_from=reuse_from)
    except ValueError as exc:  # AnnotationError and PolicyUnavailable included: the message says what to do
        _fail(str(exc))
    summary = {
        "cv_macro_f1": result.metrics["cv"]["transformer"]["macro_f1"],
        "cv_reused_from": result.metrics["cv"].get("reused_from"),
        "holdout_macro_f1": (result.metrics.get("holdout", {}).get("transformer") or {}).get("macro_f1"),
        "default_backend": "onnx" if result.metrics["int8"]["int8_ok"] else "torch",
        "backend_reason": result.metrics["int8"]["decision"],
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
        "finetune,tfidf_logreg", help="comma-separated variant names (see training/experiments.py)"
    ),
    output: Path = typer.Option(Path("reports/experiments.json"), "--output", "-o"),
    learning_curve: str | None = typer.Option(
        None,
        "--learning-curve",
        help="instead: CV macro-F1 at these fractions of the training documents, "
        "e.g. 0.25,0.5,0.75 -> reports/learning_curve.json",
    ),
    from_bundle: str | None = typer.Option(
        None, "--from-bundle", help="add the shipped recipe's row from this bundle's own CV (no training)"
    ),
    config: Path | None = ConfigOpt,
) -> None:
    """Compare training ideas in grouped CV on the same folds; the model card shows the table."""
    import sys

    from training.experiments import VARIANTS, run_experiments, write_report
    from training.experiments import learning_curve as run_learning_curve
    from training.train import load_training_data

    settings = _settings(ctx, config)
    command = ("stance experiments " + " ".join(sys.argv[2:])).strip()
    annotations, _ = load_training_data(settings)
    if learning_curve:
        try:
            fractions = sorted({float(x) for x in learning_curve.split(",") if x.strip()})
        except ValueError:
            _fail(f"--learning-curve takes fractions like 0.25,0.5,0.75; got {learning_curve!r}", 2)
        if not fractions or not all(0 < f <= 1 for f in fractions):
            _fail("--learning-curve fractions must lie in (0, 1]", 2)
        curve = run_learning_curve(settings, annotations, fractions, command)
        path = output.parent / "learning_curve.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(curve, indent=2) + "\n")
        for p in curve["points"]:
            typer.echo(
                f"{p['fraction']:>5.0%} ({p['n_train_statements']} statements)  macro-F1 {p['macro_f1']:.3f} "
                f"[{p['macro_f1_ci'][0]:.3f}, {p['macro_f1_ci'][1]:.3f}]"
            )
        return
    if from_bundle:
        from training.bundle import BundleError
        from training.experiments import row_from_bundle
        from training.registry import Registry

        try:
            bundle_dir = Registry(settings.paths.models_dir).resolve(from_bundle)
            row = row_from_bundle(settings, annotations, bundle_dir, command)
        except (BundleError, ValueError, FileNotFoundError) as exc:
            _fail(str(exc))
        report = run_experiments(settings, annotations, [], command, output)
        report = write_report({**report, "variants": [row]}, output)
        typer.echo(f"{row['name']} from {bundle_dir.name}: macro-F1 {row['metrics']['macro_f1']:.3f}")
        return
    names = [v.strip() for v in variants.split(",") if v.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        _fail(f"unknown variant(s) {unknown}; choose from {sorted(VARIANTS)}", 2)
    for name in names:  # the report is written after each variant: a long run keeps what it measured
        report = write_report(run_experiments(settings, annotations, [name], command, output), output)
    for row in (r for r in report["variants"] if r["name"] in names):
        typer.echo(f"{row['name']:<22} {row['seconds']:.0f}s")
        for policy, m in row["policies"].items():
            typer.echo(
                f"  {policy:<11} macro-F1 {m['macro_f1']:.3f} [{m['macro_f1_ci'][0]:.3f}, {m['macro_f1_ci'][1]:.3f}]"
                f"  none->stance {m['none_false_stance_rate']:.3f} (whole articles "
                f"{_maybe(m['article_none_false_stance_rate'])})"
                f"  per label " + " ".join(f"{v:.2f}" for v in m["per_label_f1"].values())
            )
    typer.echo(report["conclusion"])


def _maybe(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:.3f}"


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
