"""Annotations in, registered model bundle out.

Steps: hold out the gate documents; grouped k-fold CV of the transformer and both
baselines (out-of-fold probabilities -> the decision policy: calibration + thresholds);
the final model on all training documents; held-out figures; the candidate CPU runtimes
exported and checked against fp32 on the held-out statements (training/runtime_choice.py);
model card + plots; an atomic write into the registry.

A quick run (`training.cross_validate: false`, the retrain default) skips the CV and reuses
the decision policy and CV figures of the bundle it starts from: the final fit is the same
deterministic recipe, so it lands where the full run would, in a fraction of the time.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from tqdm.auto import tqdm

from training.annotations import Annotation, annotation_files, load_annotations
from training.baselines import KeywordRules, TfidfBaseline
from training.bundle import OOF_FILE, read_meta, read_metrics, save_bundle
from training.card import model_card, pr_plots, reliability_plots
from training.crossval import CVOutcome, outcome, run_cv
from training.data import split_holdout, texts_and_targets
from training.experiments import article_sources, policy_table, save_oof
from training.finetune import predict_proba
from training.hf_data import annotation_dataset, dataset_folds
from training.hf_data import texts_and_targets as dataset_texts_and_targets
from training.metrics import false_stance_rate, full_metrics, point_metrics
from training.parallel_fit import FINAL, FitJob, run_fits
from training.policy import Decision, cross_fit, expected_calibration_error, fit_policy, reliability
from training.progress import FINISH_STEPS_PER_1K, Plan, fit_steps
from training.registry import Registry
from training.runtime_choice import check_runtimes
from training.settings import Settings

REPORTS = ("reports/experiments.json", "reports/learning_curve.json")


@dataclass(frozen=True)
class TrainResult:
    version: str
    path: Path
    metrics: dict[str, Any]


class PolicyUnavailable(ValueError):
    """A quick run needs a bundle whose decision policy it can reuse."""


def _log(message: str) -> None:
    tqdm.write(message, file=sys.stderr)


def baseline_fit_predict(make):
    def fit_predict(tr: list[str], y: np.ndarray, va: list[str], fold: int) -> np.ndarray:
        return make().fit(tr, y).predict_proba(va)

    return fit_predict


def make_plan(settings: Settings, n_train: int, cross_validate: bool) -> Plan:
    cfg = settings.training
    fits = 2 if cfg.distill_layers else 1
    final = fit_steps(n_train, cfg.batch_size, cfg.epochs) * fits
    phases = []
    if cross_validate:
        per_fold = fit_steps(round(n_train * (cfg.n_folds - 1) / cfg.n_folds), cfg.batch_size, cfg.epochs) * fits
        phases.append(
            (
                f"{cfg.n_folds} cross-validation folds and the final model ({cfg.parallel_fits} at a time)",
                per_fold * cfg.n_folds + final,
            )
        )
    else:
        phases.append(("final model", final))
    phases.append(("export and checks", max(1, n_train * FINISH_STEPS_PER_1K // 1000)))
    return Plan(phases)


def calibration_report(
    y: np.ndarray, raw: np.ndarray, calibrated: np.ndarray, labels: Sequence[str], bins: int
) -> dict[str, Any]:
    """ECE per label before and after calibration, and the reliability-diagram points,
    on cross-fitted out-of-fold scores (the calibration never saw the fold it is judged on)."""
    return {
        name: {
            "ece_raw": expected_calibration_error(y[:, j], raw[:, j], bins),
            "ece": expected_calibration_error(y[:, j], calibrated[:, j], bins),
            "reliability": reliability(y[:, j], calibrated[:, j], bins),
            "reliability_raw": reliability(y[:, j], raw[:, j], bins),
        }
        for j, name in enumerate(labels)
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
        "n_train_sources": len({a.source for a in train}),
        "n_holdout": len(held),
        "n_holdout_sources": len({a.source for a in held}),
        "label_counts": dict(sorted(counts.items())),
    }


def _reports(root: Path) -> dict[str, Any]:
    """The committed experiment and learning-curve reports (each row keeps its command)."""
    out = {}
    for rel in REPORTS:
        path = root / rel
        if path.is_file():
            out[Path(rel).stem] = json.loads(path.read_text())
    return out


def reusable_policy(registry: Registry, version: str | None = None) -> tuple[str, Decision, dict[str, Any]]:
    """(version, decision policy, CV metrics) of the bundle a quick run starts from."""
    try:
        path = registry.resolve(version)
    except Exception as exc:  # noqa: BLE001 - any registry problem means: nothing to reuse
        raise PolicyUnavailable(f"a quick run (no CV) reuses the current bundle's policy, but: {exc}") from None
    meta, metrics = read_meta(path), read_metrics(path)
    if "calibration" not in meta or "cv" not in metrics:
        raise PolicyUnavailable(
            f"bundle {meta.get('version')} has no calibrated policy to reuse; run a full `stance train`"
        )
    labels = tuple(meta["labels"])
    decision = Decision(labels, {k: tuple(v) for k, v in meta["calibration"].items()}, meta["thresholds"])
    return str(meta["version"]), decision, metrics["cv"]


def train_bundle(
    settings: Settings,
    annotations: Sequence[Annotation],
    files: list[str],
    promote: bool = True,
    version: str | None = None,
    reuse_from: str | None = None,
) -> TrainResult:
    """Train, evaluate and register a bundle; make it current if `promote`."""
    t0 = time.perf_counter()
    labels = list(settings.labels)
    cfg = settings.training
    registry = Registry(settings.paths.models_dir)
    train, held = split_holdout(annotations, cfg.holdout_fraction, cfg.holdout_salt)
    cross_validate = cfg.cross_validate and reuse_from is None
    if len({a.source for a in train}) < cfg.n_folds and cross_validate:
        raise ValueError(
            f"need at least {cfg.n_folds} training source documents for grouped CV; "
            f"got {len({a.source for a in train})}"
        )
    reused = None
    if not cross_validate:
        try:
            reused = reusable_policy(registry, reuse_from)
        except PolicyUnavailable as exc:
            if reuse_from is not None:
                raise
            _log(f"{exc}: running the full CV instead")
            cross_validate = True
    train_set = annotation_dataset(train, labels)  # the statements as a `datasets.Dataset`
    texts, targets = dataset_texts_and_targets(train_set)
    plan = make_plan(settings, len(train), cross_validate)

    cv: dict[str, Any]
    cv_tf: CVOutcome | None = None
    lr_decision: Decision | None = None
    folds = dataset_folds(train_set, cfg.n_folds, cfg.seed) if cross_validate else []
    jobs = [
        FitJob(k, [texts[i] for i in f.train], targets[f.train], [texts[i] for i in f.valid], cfg.seed + k)
        for k, f in enumerate(folds)
    ] + [FitJob(FINAL, texts, targets, None, cfg.seed)]
    if cross_validate:
        _log(
            f"grouped {cfg.n_folds}-fold CV on {len(train)} statements ({len({a.source for a in train})} documents) "
            f"and the final model, {cfg.parallel_fits} fine-tunes at a time"
        )
    else:
        _log(f"final model on all {len(train)} training statements")
    plan.start(plan.phases[0][0])
    fitted = run_fits(settings, jobs, plan, cfg.parallel_fits)
    model, tokenizer = fitted[FINAL]
    t_fits = time.perf_counter()
    if cross_validate:
        probs = np.zeros(targets.shape, dtype=np.float32)
        fold_of = np.zeros(len(train), dtype=int)
        for k, fold in enumerate(folds):
            probs[fold.valid], fold_of[fold.valid] = fitted[k], k
        cv_tf = outcome(train, probs, fold_of, settings)
        cv_lr = run_cv(train, baseline_fit_predict(lambda: TfidfBaseline(cfg.seed)), settings, "CV tfidf", folds=folds)
        cv_kw = run_cv(
            train, baseline_fit_predict(lambda: KeywordRules(labels)), settings, "CV keywords", binary=True, folds=folds
        )
        decision = fit_policy(settings.thresholds.policy, targets, cv_tf.probs, labels, settings.thresholds)
        lr_decision = fit_policy(settings.thresholds.policy, targets, cv_lr.probs, labels, settings.thresholds)
        calibrated, _ = cross_fit(
            settings.thresholds.policy, targets, cv_tf.probs, cv_tf.fold_of, labels, settings.thresholds
        )
        whole = np.array([a.source in article_sources(settings) for a in train])
        cv = {
            "n_folds": cfg.n_folds,
            "policy": settings.thresholds.policy,
            "transformer": {
                **cv_tf.metrics,
                "article_none_false_stance_rate": false_stance_rate(targets, cv_tf.preds, whole),
            },
            "tfidf_logreg": {
                **cv_lr.metrics,
                "article_none_false_stance_rate": false_stance_rate(targets, cv_lr.preds, whole),
            },
            "keyword_rules": cv_kw.metrics,
            "policies": policy_table(settings, train, cv_tf.probs, cv_tf.fold_of),
            "calibration": calibration_report(
                targets, cv_tf.probs, calibrated, labels, settings.thresholds.calibration_bins
            ),
        }
    else:
        reused_version, decision, cv = reused
        cv = {**cv, "reused_from": reused_version}
        _log(f"quick run: no CV; decision policy and CV figures reused from {reused_version}")
    t_final = time.perf_counter()
    plan.start("export and checks")

    holdout: dict[str, Any] = {}
    h_texts, h_targets = texts_and_targets(held, labels)
    groups = [a.source for a in held]
    if held:
        h_tf = decision.decide(predict_proba(model, tokenizer, h_texts, settings.base_model.max_length))
        lr = TfidfBaseline(cfg.seed).fit(texts, targets)
        lr_cut = lr_decision or fit_policy("fixed", targets, lr.predict_proba(texts), labels, settings.thresholds)
        holdout = {
            "transformer": full_metrics(h_targets, h_tf, labels, settings.evaluation, groups),
            "tfidf_logreg": point_metrics(h_targets, lr_cut.decide(lr.predict_proba(h_texts)), labels),
            "keyword_rules": point_metrics(
                h_targets, (KeywordRules(labels).predict_proba(h_texts) >= 0.5).astype(int), labels
            ),
            "sources": sorted(set(groups)),
        }

    version = version or registry.new_version()
    with tempfile.TemporaryDirectory(prefix="stance-bundle-") as tmp:
        tmp_dir = Path(tmp)
        runtimes = check_runtimes(model, tokenizer, tmp_dir / "runtimes", annotations, train, held, decision, settings)
        _log(
            ("SERVING BACKEND: " + runtimes.reason).upper()
            if runtimes.chosen == "torch"
            else "serving backend: " + runtimes.reason
        )
        extra: dict[str, Path] = dict(runtimes.files)
        if cv_tf is not None:
            extra.update(
                pr_plots(
                    targets,
                    {"transformer": cv_tf.probs, "tfidf_logreg": cv_lr.probs, "keyword_rules": cv_kw.probs},
                    {n: 0.5 for n in labels},
                    labels,
                    tmp_dir / "plots",
                    decision=decision,
                )
            )
            extra.update(reliability_plots(cv["calibration"], labels, tmp_dir / "plots"))
            save_oof(tmp_dir / OOF_FILE, train, cv_tf.probs, cv_tf.fold_of)
            extra[OOF_FILE] = tmp_dir / OOF_FILE
        t_end = time.perf_counter()
        metrics = {
            "cv": cv,
            "holdout": holdout,
            "runtimes": runtimes.summary(),
            "data": _data_summary(annotations, train, held, files),
            "timing": {
                "fits_s": t_fits - t0,
                "baselines_s": t_final - t_fits,
                "runtimes_s": runtimes.seconds,
                "total_s": t_end - t0,
                "parallel_fits": cfg.parallel_fits,
            },
            **_reports(settings.root),
        }
        meta = {
            "version": version,
            "labels": labels,
            "policy": settings.thresholds.policy,
            "calibration": {n: list(v) for n, v in decision.calibration.items()},
            "thresholds": decision.thresholds,
            "base_model": settings.base_model.package
            if settings.base_model.path is None
            else str(settings.base_model.path),
            "max_length": settings.base_model.max_length,
            "default_backend": runtimes.chosen,
            "backend_reason": runtimes.reason,
            "runtimes": {
                "carried": sorted(runtimes.files),
                "verdicts": {n: v["verdict"] for n, v in runtimes.candidates.items()},
            },
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
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
            extra=extra,
        )
    plan.finish()
    if promote:
        registry.set_current(version, reason="trained with `stance train`")
    held_note = f"held-out {holdout['transformer']['macro_f1']:.3f} on {len(held)} statements; " if holdout else ""
    _log(
        f"registered {version}: CV macro-F1 {cv['transformer']['macro_f1']:.3f}"
        f"{' (reused)' if not cross_validate else ''} (tfidf {cv['tfidf_logreg']['macro_f1']:.3f}); {held_note}"
        f"backend {meta['default_backend']}; {'current' if promote else 'not promoted'}; {t_end - t0:.0f}s"
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
