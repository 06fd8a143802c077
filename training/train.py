"""Annotations in, registered model bundle out.

Steps: hold out the gate documents; grouped k-fold CV of the transformer and both
baselines (out-of-fold probabilities -> per-label thresholds); the final model on all
training documents; held-out figures; int8 ONNX export checked against fp32; model
card + plots; an atomic write into the registry.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from tqdm.auto import tqdm

from training.annotations import Annotation, annotation_files, load_annotations
from training.baselines import KeywordRules, TfidfBaseline
from training.bundle import ONNX_FILE, OnnxBackend, save_bundle, sigmoid
from training.card import model_card, pr_plots
from training.crossval import run_cv
from training.data import grouped_folds, split_holdout, texts_and_targets
from training.finetune import fit_recipe, predict_proba
from training.metrics import apply_thresholds, choose_thresholds, full_metrics, point_metrics
from training.onnx_export import export_int8
from training.registry import Registry
from training.settings import Settings


@dataclass(frozen=True)
class TrainResult:
    version: str
    path: Path
    metrics: dict[str, Any]


def _log(message: str) -> None:
    tqdm.write(message, file=sys.stderr)


def transformer_fit_predict(settings: Settings):
    def fit_predict(tr: list[str], y: np.ndarray, va: list[str], fold: int) -> np.ndarray:
        model, tok = fit_recipe(tr, y, settings, seed=settings.training.seed + fold)
        return predict_proba(model, tok, va, settings.base_model.max_length)

    return fit_predict


def baseline_fit_predict(make):
    def fit_predict(tr: list[str], y: np.ndarray, va: list[str], fold: int) -> np.ndarray:
        return make().fit(tr, y).predict_proba(va)

    return fit_predict


def _int8_check(
    model: Any, tokenizer: Any, onnx_path: Path, texts: list[str], targets: np.ndarray,
    thresholds: dict[str, float], settings: Settings,
) -> dict[str, Any]:
    """Agreement of int8 ONNX with fp32 torch on all annotations; decides the default backend."""
    labels = list(settings.labels)
    fp32 = apply_thresholds(predict_proba(model, tokenizer, texts, settings.base_model.max_length), thresholds, labels)
    session = OnnxBackend(
        onnx_path, tokenizer, settings.base_model.max_length, settings.inference.batch_size, settings.inference.threads
    )
    int8 = apply_thresholds(sigmoid(session.predict_logits(texts)), thresholds, labels)
    statement_agreement = float((fp32 == int8).all(axis=1).mean())
    f1_fp32 = point_metrics(targets, fp32, labels)["macro_f1"]
    f1_int8 = point_metrics(targets, int8, labels)["macro_f1"]
    inf = settings.inference
    ok = statement_agreement >= inf.int8_min_agreement and (f1_fp32 - f1_int8) < inf.int8_max_macro_f1_drop
    return {
        "n": len(texts),
        "statement_agreement": statement_agreement,
        "decision_agreement": float((fp32 == int8).mean()),
        "macro_f1_fp32": f1_fp32,
        "macro_f1_int8": f1_int8,
        "int8_ok": bool(ok),
        "decision": (
            f"int8 kept: agreement >= {inf.int8_min_agreement} and macro-F1 drop < {inf.int8_max_macro_f1_drop}"
            if ok
            else f"int8 rejected: agreement < {inf.int8_min_agreement} or macro-F1 drop >= {inf.int8_max_macro_f1_drop}"
        ),
    }


def _data_summary(
    all_anns: Sequence[Annotation], train: Sequence[Annotation], held: Sequence[Annotation], files: list[str]
) -> dict[str, Any]:
    counts = Counter(label for a in train for label in (a.labels or ("none",)))
    return {
        "files": [Path(f).name for f in files],
        "n_statements": len(all_anns),
        "n_sources": len({a.source for a in all_anns}),
        "n_train": len(train),
        "n_holdout": len(held),
        "n_holdout_sources": len({a.source for a in held}),
        "label_counts": dict(sorted(counts.items())),
    }


def train_bundle(
    settings: Settings,
    annotations: Sequence[Annotation],
    files: list[str],
    promote: bool = True,
    version: str | None = None,
) -> TrainResult:
    """Train, evaluate and register a bundle; make it current if `promote`."""
    t0 = time.perf_counter()
    labels = list(settings.labels)
    cfg = settings.training
    train, held = split_holdout(annotations, cfg.holdout_fraction, cfg.holdout_salt)
    if len({a.source for a in train}) < cfg.n_folds:
        raise ValueError(
            f"need at least {cfg.n_folds} training source documents for grouped CV; "
            f"got {len({a.source for a in train})}"
        )
    texts, targets = texts_and_targets(train, labels)
    folds = grouped_folds(train, cfg.n_folds, cfg.seed, labels)

    _log(f"grouped {cfg.n_folds}-fold CV on {len(train)} statements ({len({a.source for a in train})} documents)")
    cv_tf = run_cv(train, transformer_fit_predict(settings), settings, "CV transformer", folds=folds)
    cv_lr = run_cv(train, baseline_fit_predict(lambda: TfidfBaseline(cfg.seed)), settings, "CV tfidf", folds=folds)
    cv_kw = run_cv(train, baseline_fit_predict(lambda: KeywordRules(labels)), settings, "CV keywords", binary=True, folds=folds)
    t_cv = time.perf_counter()
    thresholds = choose_thresholds(targets, cv_tf.probs, labels, settings.thresholds)

    _log(f"final model on all {len(train)} training statements")
    model, tokenizer = fit_recipe(texts, targets, settings)
    t_final = time.perf_counter()

    holdout: dict[str, Any] = {}
    if held:
        h_texts, h_targets = texts_and_targets(held, labels)
        groups = [a.source for a in held]
        h_tf = apply_thresholds(predict_proba(model, tokenizer, h_texts, settings.base_model.max_length), thresholds, labels)
        lr = TfidfBaseline(cfg.seed).fit(texts, targets)
        lr_cut = choose_thresholds(targets, cv_lr.probs, labels, settings.thresholds)
        holdout = {
            "transformer": full_metrics(h_targets, h_tf, labels, settings.evaluation, groups),
            "tfidf_logreg": point_metrics(h_targets, apply_thresholds(lr.predict_proba(h_texts), lr_cut, labels), labels),
            "keyword_rules": point_metrics(h_targets, (KeywordRules(labels).predict_proba(h_texts) >= 0.5).astype(int), labels),
            "sources": sorted(set(groups)),
        }

    registry = Registry(settings.paths.models_dir)
    version = version or registry.new_version()
    with tempfile.TemporaryDirectory(prefix="stance-bundle-") as tmp:
        tmp_dir = Path(tmp)
        onnx_path = export_int8(model, tokenizer, tmp_dir / "model.int8.onnx")
        all_texts, all_targets = texts_and_targets(annotations, labels)
        int8 = _int8_check(model, tokenizer, onnx_path, all_texts, all_targets, thresholds, settings)
        plots = pr_plots(
            targets,
            {"transformer": cv_tf.probs, "tfidf_logreg": cv_lr.probs, "keyword_rules": cv_kw.probs},
            thresholds,
            labels,
            tmp_dir / "plots",
        )
        t_end = time.perf_counter()
        metrics = {
            "cv": {
                "n_folds": cfg.n_folds,
                "transformer": cv_tf.metrics,
                "tfidf_logreg": cv_lr.metrics,
                "keyword_rules": cv_kw.metrics,
            },
            "holdout": holdout,
            "int8": int8,
            "data": _data_summary(annotations, train, held, files),
            "timing": {"cv_s": t_cv - t0, "final_s": t_final - t_cv, "total_s": t_end - t0},
        }
        meta = {
            "version": version,
            "labels": labels,
            "thresholds": thresholds,
            "base_model": settings.base_model.package if settings.base_model.path is None else str(settings.base_model.path),
            "max_length": settings.base_model.max_length,
            "default_backend": "onnx" if int8["int8_ok"] else "torch",
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "data": metrics["data"],
        }
        card = model_card(metrics, meta, settings.root)
        path = save_bundle(
            registry.path(version),
            model=model,
            tokenizer=tokenizer,
            meta=meta,
            config_yaml=yaml.safe_dump(json.loads(settings.model_dump_json()), sort_keys=False),
            metrics=metrics,
            card=card,
            extra={ONNX_FILE: onnx_path, **plots},
        )
    if promote:
        registry.set_current(version, reason="trained with `stance train`")
    _log(
        f"registered {version}: CV macro-F1 {cv_tf.metrics['macro_f1']:.3f} (tfidf {cv_lr.metrics['macro_f1']:.3f}, "
        f"keywords {cv_kw.metrics['macro_f1']:.3f}); {'current' if promote else 'not promoted'}; "
        f"{t_end - t0:.0f}s"
    )
    return TrainResult(version=version, path=path, metrics=metrics)


def load_training_data(settings: Settings, data: Sequence[Path] | None = None) -> tuple[list[Annotation], list[str]]:
    files = list(data) if data else annotation_files(settings.paths.annotations_dir)
    report = load_annotations(files, settings.labels)
    return report.annotations, report.files


def train_default(settings: Settings) -> str:
    """Train on the project's annotation files and make the result current (first start)."""
    annotations, files = load_training_data(settings)
    return train_bundle(settings, annotations, files, promote=True).version
