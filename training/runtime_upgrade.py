"""Give an existing bundle the runtime choice of today's training, without retraining.

Bundles are immutable, so the result is a NEW version in the registry: the same weights,
tokenizer, calibration and thresholds, the candidate runtimes exported and checked as
training does (training/runtime_choice.py), the passing fastest one as default backend,
`derived_from` naming the source. It is not promoted: promote it like any other version.

The check needs statements the model never trained on. A bundle does not list its
held-out statements, but the split is a pure function of the source ids and the bundle's
own `holdout_fraction` / `holdout_salt` (training_config.yaml), so it is recomputed from
the annotation files; documents added since then fall on either side by the same rule
and were never trained on either. The recomputed held-out documents must include every
one the bundle reports (metrics.json holdout.sources), else the data changed and the
command stops.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from training.annotations import Annotation
from training.bundle import (
    BUNDLE_META,
    CARD_FILE,
    METRICS_FILE,
    MODEL_DIR,
    BundleError,
    read_meta,
    read_metrics,
    verify_manifest,
    write_manifest,
)
from training.data import split_holdout
from training.policy import Decision
from training.registry import Registry
from training.runtime_choice import RuntimeChoice, check_runtimes
from training.runtimes import RUNTIMES, runtime_files
from training.settings import Settings


def bundle_holdout(
    bundle_dir: Path, annotations: list[Annotation]
) -> tuple[list[Annotation], list[Annotation], dict[str, Any]]:
    """(train, held-out) as the bundle's training split them, and its training config."""
    trained = yaml.safe_load((bundle_dir / "training_config.yaml").read_text())["training"]
    train, held = split_holdout(annotations, float(trained["holdout_fraction"]), str(trained["holdout_salt"]))
    reported = set(read_metrics(bundle_dir).get("holdout", {}).get("sources") or [])
    missing = reported - {a.source for a in held}
    if missing:
        raise BundleError(
            f"{bundle_dir.name}: {len(missing)} held-out documents of the bundle are not in the annotation data "
            f"(e.g. {sorted(missing)[:3]}); point --data at the data it was trained on"
        )
    return train, held, trained


def upgrade_runtimes(
    bundle_dir: Path, annotations: list[Annotation], settings: Settings, version: str | None = None
) -> tuple[Path, RuntimeChoice]:
    """Write a new registry version of `bundle_dir` carrying the chosen runtime."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import training.modeling  # noqa: F401  (registers the bundle's model type)

    bundle_dir = Path(bundle_dir)
    verify_manifest(bundle_dir)
    meta, metrics = read_meta(bundle_dir), read_metrics(bundle_dir)
    train, held, trained = bundle_holdout(bundle_dir, annotations)
    labels = list(meta["labels"])
    settings = settings.with_overrides(
        base_model={"max_length": int(meta.get("max_length", settings.base_model.max_length))},
        training={"seed": int(trained.get("seed", settings.training.seed))},
    )
    if labels != list(settings.labels):
        raise BundleError(f"{bundle_dir.name} has labels {labels}, the config {list(settings.labels)}")
    calibration = {k: tuple(v) for k, v in (meta.get("calibration") or {}).items()}
    decision = Decision(tuple(labels), calibration, meta["thresholds"])
    model = AutoModelForSequenceClassification.from_pretrained(bundle_dir / MODEL_DIR, local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(bundle_dir / MODEL_DIR, local_files_only=True)
    registry = Registry(bundle_dir.parent)
    version = version or registry.new_version()
    target = registry.path(version)
    if target.exists():
        raise BundleError(f"{target} exists already; bundles are immutable")
    with tempfile.TemporaryDirectory(prefix="stance-runtimes-") as work:
        choice = check_runtimes(model, tokenizer, Path(work), annotations, train, held, decision, settings)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=bundle_dir.parent))
        try:
            shutil.copytree(bundle_dir, tmp, dirs_exist_ok=True)
            for name in RUNTIMES:  # the source's runtime files are replaced by the new choice
                for rel in runtime_files(name):
                    (tmp / rel).unlink(missing_ok=True)
            for rel, src in choice.files.items():
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, tmp / rel)
            for folder in ("onnx", "openvino"):
                if (tmp / folder).is_dir() and not any((tmp / folder).iterdir()):
                    (tmp / folder).rmdir()
            new_meta = {
                **meta,
                "version": version,
                "derived_from": meta["version"],
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "default_backend": choice.chosen,
                "backend_reason": choice.reason,
                "runtimes": {
                    "carried": sorted(choice.files),
                    "verdicts": {n: v["verdict"] for n, v in choice.candidates.items()},
                },
            }
            new_metrics = {**metrics, "runtimes": choice.summary()}
            (tmp / BUNDLE_META).write_text(json.dumps(new_meta, indent=2, sort_keys=True))
            (tmp / METRICS_FILE).write_text(json.dumps(new_metrics, indent=2, sort_keys=True))
            card = (tmp / CARD_FILE).read_text() if (tmp / CARD_FILE).is_file() else ""
            (tmp / CARD_FILE).write_text(
                card.rstrip()
                + f"\n\n## Runtime upgrade\n- {version}: derived from {meta['version']} without retraining "
                f"(`export-runtimes`). Default backend **{choice.chosen}**: {choice.reason}.\n"
            )
            write_manifest(tmp)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target, choice
