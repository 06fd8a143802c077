"""Training ideas measured in grouped CV on the same folds, before any is kept.

Each variant is a fit/predict function over (train texts, targets, valid texts). Every run
keeps its out-of-fold probabilities (`reports/oof/<variant>.npz`), so the decision policies
(training/policy.py) are compared on them without retraining, and the label audit can use
them. The report (reports/experiments.json) feeds the model card's comparison table.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from training.annotations import Annotation
from training.base_model import base_model_dir
from training.crossval import FitPredict, out_of_fold
from training.data import Fold, grouped_folds, split_holdout, texts_and_targets
from training.finetune import fit_recipe, predict_proba
from training.metrics import false_stance_rate, full_metrics
from training.policy import POLICIES, choose_policy, cross_fit
from training.settings import Settings

SHIPPED = "finetune"
RECIPE_KNOBS = ("epochs", "learning_rate", "layer_lr_decay", "average_last_epochs", "label_smoothing", "rdrop_alpha")


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    make: Callable[[Settings], FitPredict]


def _finetune(overrides: dict[str, Any] | None = None, seeds: int = 1) -> Callable[[Settings], FitPredict]:
    def make(settings: Settings) -> FitPredict:
        tuned = settings.with_overrides(training=overrides) if overrides else settings

        def fit_predict(tr: list[str], y: np.ndarray, va: list[str], fold: int) -> np.ndarray:
            runs = []
            for s in range(seeds):
                model, tok = fit_recipe(tr, y, tuned, seed=tuned.training.seed + fold + 1000 * s)
                runs.append(predict_proba(model, tok, va, tuned.base_model.max_length))
            return np.mean(runs, axis=0)

        return fit_predict

    return make


def embed_texts(settings: Settings, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Mean-pooled, L2-normalised embeddings of the frozen base encoder (as MiniLM was trained)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    folder = base_model_dir(settings.base_model)
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    enc_model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            enc = tok(
                list(texts[i : i + batch_size]),
                padding=True,
                truncation=True,
                max_length=settings.base_model.max_length,
                return_tensors="pt",
            )
            hidden = enc_model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=1).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def _embed_logreg(settings: Settings) -> FitPredict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    def fit_predict(tr: list[str], y: np.ndarray, va: list[str], fold: int) -> np.ndarray:
        head = OneVsRestClassifier(
            LogisticRegression(C=4.0, class_weight="balanced", max_iter=3000, random_state=settings.training.seed)
        )
        head.fit(embed_texts(settings, tr), y.astype(int))
        return np.asarray(head.predict_proba(embed_texts(settings, va)), dtype=np.float32)

    return fit_predict


def _tfidf(settings: Settings) -> FitPredict:
    from training.baselines import TfidfBaseline

    def fit_predict(tr: list[str], y: np.ndarray, va: list[str], fold: int) -> np.ndarray:
        return TfidfBaseline(settings.training.seed).fit(tr, y).predict_proba(va)

    return fit_predict


# Every fine-tuning variant names all recipe knobs, so a row keeps its meaning when the
# defaults in configs/default.yaml change.
_BASE = {
    "epochs": 4,
    "learning_rate": 1e-4,
    "layer_lr_decay": 1.0,
    "average_last_epochs": 0,
    "label_smoothing": 0.0,
    "rdrop_alpha": 0.0,
}


def _recipe(name: str, description: str, **knobs: Any) -> Variant:
    full = {**_BASE, **knobs}
    return Variant(name, f"{description} ({_knobs_text(full)})", _finetune(full))


def _knobs_text(knobs: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in knobs.items())


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in [
        Variant(SHIPPED, "the recipe of configs/default.yaml", _finetune()),
        Variant("tfidf_logreg", "baseline: TF-IDF word 1-2 grams + logistic regression", _tfidf),
        Variant("embed_logreg", "frozen MiniLM mean-pooled embeddings + logistic regression", _embed_logreg),
        _recipe("e3", "3 epochs", epochs=3),
        _recipe("e4", "4 epochs", epochs=4),
        _recipe("e6", "6 epochs", epochs=6),
        _recipe("e8", "8 epochs (the recipe before this data)", epochs=8),
        _recipe("e4_lr5e-5", "4 epochs, learning rate 5e-5", learning_rate=5e-5),
        _recipe("e4_lr2e-4", "4 epochs, learning rate 2e-4", learning_rate=2e-4),
        _recipe("e4_avg3", "4 epochs, weights averaged over the last 3 epochs", average_last_epochs=3),
        _recipe("e6_avg3", "6 epochs, weights averaged over the last 3 epochs", epochs=6, average_last_epochs=3),
        _recipe(
            "e4_llrd0.8_lr2e-4", "4 epochs, layer-wise learning-rate decay", learning_rate=2e-4, layer_lr_decay=0.8
        ),
        _recipe(
            "e6_llrd0.8_lr2e-4",
            "6 epochs, layer-wise learning-rate decay",
            epochs=6,
            learning_rate=2e-4,
            layer_lr_decay=0.8,
        ),
        _recipe("e4_ls0.1", "4 epochs, label smoothing 0.1", label_smoothing=0.1),
        _recipe("e4_rdrop1", "4 epochs, R-drop (2 dropout passes per step)", rdrop_alpha=1.0),
        Variant(
            "ensemble2",
            "mean of 2 fine-tuned seeds of the default recipe (2x train and inference cost; not shippable)",
            _finetune(seeds=2),
        ),
    ]
}


def oof_path(report_path: Path, name: str) -> Path:
    return report_path.parent / "oof" / f"{name}.npz"


def save_oof(path: Path, annotations: Sequence[Annotation], probs: np.ndarray, fold_of: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        probs=probs.astype(np.float32),
        fold_of=fold_of,
        texts=np.array([a.text for a in annotations]),
        sources=np.array([a.source for a in annotations]),
    )


def load_oof(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def article_sources(settings: Settings) -> set[str]:
    """Documents annotated statement by statement in full (the corpus articles): the place to
    measure how often a `none` statement of a whole article gets a stance."""
    return {p.stem for p in settings.paths.articles_dir.glob("*.txt")}


def policy_table(
    settings: Settings, annotations: Sequence[Annotation], probs: np.ndarray, fold_of: np.ndarray
) -> dict[str, dict[str, Any]]:
    """Every decision policy, cross-fitted on the same out-of-fold probabilities."""
    labels = settings.labels
    _, y = texts_and_targets(annotations, labels)
    groups = [a.source for a in annotations]
    whole = np.array([a.source in article_sources(settings) for a in annotations])
    out = {}
    for name in POLICIES:
        _, preds = cross_fit(name, y, probs, fold_of, labels, settings.thresholds)
        m = full_metrics(y, preds, labels, settings.evaluation, groups)
        out[name] = {
            "macro_f1": m["macro_f1"],
            "macro_f1_ci": m["macro_f1_ci"],
            "micro_f1": m["micro_f1"],
            "per_label_f1": {k: v["f1"] for k, v in m["per_label"].items()},
            "none_false_stance_rate": m["none_false_stance_rate"],
            "article_none_false_stance_rate": false_stance_rate(y, preds, whole),
        }
    return out


def run_variant(
    settings: Settings, train: Sequence[Annotation], folds: Sequence[Fold], name: str, command: str, report_path: Path
) -> dict[str, Any]:
    variant = VARIANTS[name]
    texts, y = texts_and_targets(train, settings.labels)
    t0 = time.perf_counter()
    probs, fold_of = out_of_fold(texts, y, folds, variant.make(settings), f"experiment {name}")
    save_oof(oof_path(report_path, name), train, probs, fold_of)
    policies = policy_table(settings, train, probs, fold_of)
    shipped = policies[settings.thresholds.policy]
    knobs = {k: getattr(settings.training, k) for k in RECIPE_KNOBS}
    return {
        "name": name,
        "description": variant.description + (f" ({_knobs_text(knobs)})" if name == SHIPPED else ""),
        "metrics": {
            k: shipped[k]
            for k in ("macro_f1", "macro_f1_ci", "micro_f1", "none_false_stance_rate", "article_none_false_stance_rate")
        },
        "per_label_f1": shipped["per_label_f1"],
        "policies": policies,
        "seconds": round(time.perf_counter() - t0, 1),
        "command": command,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def run_experiments(
    settings: Settings, annotations: Sequence[Annotation], names: Sequence[str], command: str, report_path: Path
) -> dict[str, Any]:
    train, _ = split_holdout(annotations, settings.training.holdout_fraction, settings.training.holdout_salt)
    folds = grouped_folds(train, settings.training.n_folds, settings.training.seed, settings.labels)
    rows = [run_variant(settings, train, folds, name, command, report_path) for name in names]
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "n_folds": settings.training.n_folds,
        "n_statements": len(train),
        "n_documents": len({a.source for a in train}),
        "policy": settings.thresholds.policy,
        "select_within": settings.thresholds.select_within,
        "variants": rows,
    }


def row_from_bundle(
    settings: Settings, annotations: Sequence[Annotation], bundle_dir: Path, command: str
) -> dict[str, Any]:
    """The shipped recipe's row from a bundle's own CV (its `oof.npz`), without training again:
    `stance train` cross-validates on the same folds with the same seeds as `stance experiments`."""
    import yaml

    train, _ = split_holdout(annotations, settings.training.holdout_fraction, settings.training.holdout_salt)
    oof = load_oof(bundle_dir / "oof.npz")
    if [str(t) for t in oof["texts"]] != [a.text for a in train]:
        raise ValueError(f"{bundle_dir.name} was cross-validated on other data than the current annotations")
    trained = yaml.safe_load((bundle_dir / "training_config.yaml").read_text())["training"]
    policies = policy_table(settings, train, oof["probs"], oof["fold_of"])
    shipped = policies[settings.thresholds.policy]
    return {
        "name": SHIPPED,
        "description": f"{VARIANTS[SHIPPED].description} ({_knobs_text({k: trained[k] for k in RECIPE_KNOBS})}); "
        f"the CV of bundle {bundle_dir.name}",
        "metrics": {
            k: shipped[k]
            for k in ("macro_f1", "macro_f1_ci", "micro_f1", "none_false_stance_rate", "article_none_false_stance_rate")
        },
        "per_label_f1": shipped["per_label_f1"],
        "policies": policies,
        "seconds": None,
        "command": command,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def learning_curve(
    settings: Settings, annotations: Sequence[Annotation], fractions: Sequence[float], command: str
) -> dict[str, Any]:
    """CV macro-F1 of the configured recipe trained on a share of each fold's training
    documents (whole documents, seeded), judged on the same validation folds."""
    labels = settings.labels
    train, _ = split_holdout(annotations, settings.training.holdout_fraction, settings.training.holdout_salt)
    folds = grouped_folds(train, settings.training.n_folds, settings.training.seed, labels)
    texts, y = texts_and_targets(train, labels)
    sources = np.array([a.source for a in train])
    fit = _finetune()(settings)
    rng = np.random.default_rng(settings.training.seed)
    points = []
    for frac in fractions:
        sub_folds = []
        for fold in folds:
            docs = np.unique(sources[fold.train])
            keep = (
                set(rng.choice(docs, size=max(1, int(round(frac * len(docs)))), replace=False))
                if frac < 1
                else set(docs)
            )
            sub_folds.append(Fold(train=np.array([i for i in fold.train if sources[i] in keep]), valid=fold.valid))
        probs, fold_of = out_of_fold(texts, y, sub_folds, fit, f"learning curve {frac:.0%}")
        _, preds = cross_fit(settings.thresholds.policy, y, probs, fold_of, labels, settings.thresholds)
        m = full_metrics(y, preds, labels, settings.evaluation, list(sources))
        points.append(
            {
                "fraction": frac,
                "n_train_statements": int(np.mean([len(f.train) for f in sub_folds])),
                "macro_f1": m["macro_f1"],
                "macro_f1_ci": m["macro_f1_ci"],
                "per_label_f1": {k: v["f1"] for k, v in m["per_label"].items()},
            }
        )
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "n_folds": settings.training.n_folds,
        "n_statements": len(train),
        "policy": settings.thresholds.policy,
        "points": points,
    }


def merge_reports(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """Rows of `new`, plus the rows of `old` it did not re-run, when both were measured on
    the same data and folds: the report grows one `stance experiments` run at a time."""
    same = ("n_statements", "n_folds", "policy")
    if not old or any(old.get(k) != new.get(k) for k in same):
        return new
    fresh = {r["name"] for r in new["variants"]}
    kept = [
        {"command": old.get("command"), "created": old.get("created"), **r}
        for r in old["variants"]
        if r["name"] not in fresh
    ]
    return {**old, **new, "variants": kept + new["variants"]}


def write_report(report: dict[str, Any], path: Path) -> dict[str, Any]:
    """Merge into the report at `path` (see merge_reports), conclude, write; returns it."""
    old = json.loads(path.read_text()) if path.is_file() else None
    report = conclude(merge_reports(old, report))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    return report


def conclude(report: dict[str, Any]) -> dict[str, Any]:
    """Mark what ships and say, from the numbers, how each idea compares with it."""
    rows = {r["name"]: r for r in report["variants"]}
    base = rows.get(SHIPPED)
    notes = []
    for r in report["variants"]:
        r["kept"] = r["name"] == SHIPPED
        if base is None or r is base:
            continue
        delta = r["metrics"]["macro_f1"] - base["metrics"]["macro_f1"]
        lo, hi = base["metrics"]["macro_f1_ci"]
        inside = lo <= r["metrics"]["macro_f1"] <= hi
        notes.append(
            f"`{r['name']}` {delta:+.3f} macro-F1 vs `{SHIPPED}`"
            + (" (inside its 95% interval)" if inside else " (outside its 95% interval)")
        )
    report["conclusion"] = ("Compared with the shipped recipe: " + "; ".join(notes) + ".") if notes else ""
    if base is not None and base.get("policies"):
        name, why = choose_policy(base["policies"], report.get("select_within", 0.015))
        report["policy_choice"] = {"policy": name, "reason": why}
    return report
