"""`stance score --engine ray`: connect to (or start) Ray, run `service.scoring.ray_engine`, report.

Imported only when the Ray engine is chosen, so the local engine never imports Ray.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from service.cli.options import _fail
from service.settings import Settings


def _import_engine():  # noqa: ANN202 - the module, imported late
    try:
        from service.scoring import ray_engine
    except ImportError as exc:
        _fail(f"the Ray engine needs the ray extra: pip install -c constraints.txt -e '.[ray]' ({exc})")
    return ray_engine


def score_on_ray(
    source: str,
    output: str,
    bundle_path: Path,
    version: str,
    settings: Settings,
    fmt: str,
    out_format: str,
    articles: bool,
) -> int:
    """Score with Ray Data; returns the exit code (1 if any row failed). OUTPUT is a folder
    of part files (Ray writes in parallel); bad rows of statement mode go to OUTPUT.errors."""
    engine = _import_engine()
    import ray

    batch = settings.batch
    if "://" not in source and not Path(source).exists():
        _fail(f"{source}: no such file or folder")
    try:
        source_format = engine.source_format(source, fmt)
        job = engine.RayJob(
            source=source,
            output=output,
            bundle_path=str(bundle_path.resolve()),
            kind="articles" if articles or source_format == "dir" else "statements",
            source_format=source_format,
            output_format=engine.output_format(output, out_format),
        )
    except engine.RayEngineError as exc:
        _fail(str(exc))
    if "://" not in output and Path(output).exists() and any(Path(output).iterdir()):
        _fail(f"{output}: exists and is not empty (the Ray engine writes a folder of part files)")
    connect = not ray.is_initialized()  # a caller that connected already (a notebook, a test) keeps its Ray
    if connect:
        ray.init(address=batch.ray_address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        outcome = engine.run(job, batch, settings.inference, settings.segmentation)
    except (FileNotFoundError, engine.RayEngineError) as exc:
        _fail(f"{source}: {exc}")
    finally:
        if connect:
            ray.shutdown()
    for row in outcome.first_errors:
        print(f"error: {row.get('id') or row.get('text')!r}: {row['error']}", file=sys.stderr)
    typer.echo(
        json.dumps(
            {
                "output": output,
                "engine": "ray",
                "rows": outcome.written,
                "failed": outcome.failures,
                "errors": outcome.errors_path,
                "model_version": version,
            }
        ),
        err=True,
    )
    return 1 if outcome.failures else 0
