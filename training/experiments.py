"""Training ideas measured in grouped CV on the same folds, before any is kept.

Each variant is a fit/predict function over (train texts, targets, valid texts). The
report (reports/experiments.json) feeds the model card's comparison table.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.annotations import Annotation
from training.base_model import base_model_dir
from training.crossval import FitPredict, run_cv
from training.data import grouped_folds, split_holdout
from training.finetune import fit_recipe, predict_proba
from training.settings import Settings

SHIPPED = "finetune"


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


def _encoder(settings: Settings):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(base_model_dir(settings.base_model)), device="cpu")


def _logreg_head(train_emb: np.ndarray, y: np.ndarray, valid_emb: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    head = OneVsRestClassifier(LogisticRegression(C=4.0, class_weight="balanced", max_iter=3000, random_state=seed))
    return np.asarray(head.fit(train_emb, y.astype(int)).predict_proba(valid_emb), dtype=np.float32)


def _embed_logreg(settings: Settings) -> FitPredict:
    def fit_predict(tr: list[str], y: np.ndarray, va: list[str], fold: int) -> np.ndarray:
        enc = _encoder(settings)
        return _logreg_head(enc.encode(tr), y, enc.encode(va), settings.training.seed)

    return fit_predict


def _contrastive_pairs(y: np.ndarray, n_pairs: int, rng: random.Random) -> list[tuple[int, int, float]]:
    """SetFit-style pairs: same label set -> 1, different -> 0, balanced."""
    by_key: dict[tuple[int, ...], list[int]] = {}
    for i, row in enumerate(y):
        by_key.setdefault(tuple(int(v) for v in row), []).append(i)
    keys = [k for k, v in by_key.items() if len(v) > 1]
    pairs: list[tuple[int, int, float]] = []
    n = len(y)
    while len(pairs) < n_pairs:
        k = rng.choice(keys)
        a, b = rng.sample(by_key[k], 2)
        pairs.append((a, b, 1.0))
        a, b = rng.randrange(n), rng.randrange(n)
        if not np.array_equal(y[a], y[b]):
            pairs.append((a, b, 0.0))
    return pairs


def _setfit(pairs_per_statement: int = 4, epochs: int = 1) -> Callable[[Settings], FitPredict]:
    def make(settings: Settings) -> FitPredict:
        def fit_predict(tr: list[str], y: np.ndarray, va: list[str], fold: int) -> np.ndarray:
            torch.manual_seed(settings.training.seed + fold)
            rng = random.Random(settings.training.seed + fold)
            enc = _encoder(settings)
            enc.train()
            opt = torch.optim.AdamW(enc.parameters(), lr=2e-5)
            pairs = _contrastive_pairs(y, pairs_per_statement * len(tr), rng)
            bs = settings.training.batch_size
            for _ in range(epochs):
                rng.shuffle(pairs)
                for i in range(0, len(pairs), bs):
                    chunk = pairs[i : i + bs]
                    feats_a = enc.tokenize([tr[a] for a, _, _ in chunk])
                    feats_b = enc.tokenize([tr[b] for _, b, _ in chunk])
                    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=settings.training.bf16):
                        ea = enc(feats_a)["sentence_embedding"]
                        eb = enc(feats_b)["sentence_embedding"]
                    sim = torch.nn.functional.cosine_similarity(ea.float(), eb.float())
                    target = torch.tensor([t for _, _, t in chunk])
                    loss = torch.nn.functional.mse_loss(sim, target)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            enc.eval()
            return _logreg_head(enc.encode(tr), y, enc.encode(va), settings.training.seed)

        return fit_predict

    return make


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in [
        Variant(SHIPPED, "fine-tune: mean pooling, weighted BCE, lr 1e-4 (config defaults)", _finetune()),
        Variant("finetune_lr5e-5", "as shipped but learning rate 5e-5", _finetune({"learning_rate": 5e-5})),
        Variant("finetune_cls_lr5e-5", "stock [CLS]-pooler head, lr 5e-5", _finetune({"pooling": "cls", "learning_rate": 5e-5})),
        Variant("finetune_unweighted_lr5e-5", "plain BCE (no pos_weight), lr 5e-5", _finetune({"pos_weight_max": 1.0, "learning_rate": 5e-5})),
        Variant("layers4", "as shipped, first 4 of 6 encoder layers (1.5x faster inference)", _finetune({"encoder_layers": 4})),
        Variant("layers3", "as shipped, first 3 of 6 encoder layers (2x faster inference)", _finetune({"encoder_layers": 3})),
        Variant("distill3", "3-layer student (teacher's first layers) distilled from the shipped 6-layer model", _finetune({"distill_layers": 3})),
        Variant("distill3_spread", "as distill3, the student keeps teacher layers 0, 2, 5", _finetune({"distill_layers": 3, "distill_pick": "spread"})),
        Variant("distill3_w0.8", "as distill3, loss 0.8 on teacher probabilities, 0.2 on gold", _finetune({"distill_layers": 3, "distill_weight": 0.8})),
        Variant("ensemble2", "mean of 2 fine-tuned seeds (2x train and inference cost)", _finetune(seeds=2)),
        Variant("embed_logreg", "frozen MiniLM mean-pooled embeddings + logistic regression", lambda s: _embed_logreg(s)),
        Variant("setfit", "SetFit: contrastive pair tuning of the encoder + logistic regression head", _setfit()),
    ]
}


def run_experiments(
    settings: Settings, annotations: Sequence[Annotation], names: Sequence[str], command: str
) -> dict[str, Any]:
    train, _ = split_holdout(annotations, settings.training.holdout_fraction, settings.training.holdout_salt)
    folds = grouped_folds(train, settings.training.n_folds, settings.training.seed, settings.labels)
    rows = []
    for name in names:
        variant = VARIANTS[name]
        t0 = time.perf_counter()
        outcome = run_cv(train, variant.make(settings), settings, f"experiment {name}", folds=folds)
        rows.append({
            "name": name,
            "description": variant.description,
            "metrics": {k: outcome.metrics[k] for k in ("macro_f1", "macro_f1_ci", "micro_f1", "micro_f1_ci")},
            "per_label_f1": {k: v["f1"] for k, v in outcome.metrics["per_label"].items()},
            "seconds": round(time.perf_counter() - t0, 1),
            "command": command,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        })
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "n_folds": settings.training.n_folds,
        "n_statements": len(train),
        "variants": rows,
    }


def merge_reports(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """Rows of `new`, plus the rows of `old` it did not re-run, when both were measured on
    the same data and folds: the report grows one `stance experiments` run at a time."""
    if not old or (old.get("n_statements"), old.get("n_folds")) != (new["n_statements"], new["n_folds"]):
        return new
    fresh = {r["name"] for r in new["variants"]}
    kept = [{"command": old.get("command"), "created": old.get("created"), **r}
            for r in old["variants"] if r["name"] not in fresh]
    merged = {**old, **new, "variants": kept + new["variants"]}
    return merged


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
    return report
