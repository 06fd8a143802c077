"""Label audit: rank annotations by how likely their labels are wrong, for a person to review.

The evidence is out-of-fold probabilities: for each statement, a model that never saw it
(or its document) says what it would label. cleanlab's multi-label quality score compares
that with the given labels; the lowest scores are the likeliest errors. Two sources of
scores: the current bundle's own CV (`oof.npz`, the model analysts use), or a TF-IDF model
cross-validated on the spot (seconds, covers annotations newer than the bundle).
Nothing is changed automatically: the output is a review list (JSON Lines or a Label Studio
task file with the suggestion pre-filled).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from training.annotations import Annotation, normalise_text
from training.data import grouped_folds, texts_and_targets

ScoreSource = Literal["bundle", "tfidf"]
LABEL_STUDIO_FROM = "stance"  # the choices control's name in the exported Label Studio tasks
LABEL_STUDIO_TO = "text"


@dataclass(frozen=True)
class Suspect:
    rank: int
    text: str
    source: str
    labels: list[str]
    suggested: list[str]
    scores: dict[str, float]
    quality: float  # cleanlab's label quality score: low = likely wrong
    flagged: bool  # in cleanlab's set of likely label issues

    def to_json(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "text": self.text,
            "source": self.source,
            "labels": self.labels,
            "suggested_labels": self.suggested,
            "scores": self.scores,
            "quality": round(self.quality, 6),
            "flagged": self.flagged,
        }


def rank_suspects(
    annotations: Sequence[Annotation], probs: np.ndarray, labels: Sequence[str], thresholds: Sequence[float]
) -> list[Suspect]:
    """Every annotation, likeliest label error first."""
    from cleanlab.multilabel_classification.filter import find_label_issues
    from cleanlab.multilabel_classification.rank import get_label_quality_scores

    _, y = texts_and_targets(annotations, labels)
    given = [list(np.flatnonzero(row)) for row in y]
    probs = np.clip(np.asarray(probs, dtype=np.float64), 1e-6, 1 - 1e-6)
    quality = get_label_quality_scores(labels=given, pred_probs=probs)
    flagged = np.zeros(len(annotations), dtype=bool)
    if len(annotations) >= 2 * len(labels):
        flagged = np.asarray(find_label_issues(labels=given, pred_probs=probs), dtype=bool)
    cut = np.asarray(thresholds)
    order = np.argsort(quality, kind="stable")
    return [
        Suspect(
            rank=r + 1,
            text=annotations[i].text,
            source=annotations[i].source,
            labels=list(annotations[i].labels),
            suggested=[n for n, p, t in zip(labels, probs[i], cut, strict=False) if p >= t],
            scores={n: round(float(p), 4) for n, p in zip(labels, probs[i], strict=False)},
            quality=float(quality[i]),
            flagged=bool(flagged[i]),
        )
        for r, i in enumerate(order)
    ]


def tfidf_out_of_fold(annotations: Sequence[Annotation], labels: Sequence[str], n_folds: int, seed: int) -> np.ndarray:
    """Out-of-fold TF-IDF probabilities, folds grouped by source document."""
    from training.baselines import TfidfBaseline

    texts, y = texts_and_targets(annotations, labels)
    probs = np.zeros(y.shape, dtype=np.float32)
    n_docs = len({a.source for a in annotations})
    for fold in grouped_folds(annotations, min(n_folds, n_docs), seed, labels):
        model = TfidfBaseline(seed).fit([texts[i] for i in fold.train], y[fold.train])
        probs[fold.valid] = model.predict_proba([texts[i] for i in fold.valid])
    return probs


def bundle_out_of_fold(oof_file: Path, annotations: Sequence[Annotation]) -> tuple[list[int], np.ndarray]:
    """(indices of `annotations` the bundle's CV scored, their probabilities). Statements
    annotated after the bundle was trained have no out-of-fold score and are left out."""
    with np.load(oof_file, allow_pickle=False) as data:
        index = {normalise_text(str(t)).lower(): k for k, t in enumerate(data["texts"])}
        stored = data["probs"]
    keep, rows = [], []
    for i, ann in enumerate(annotations):
        k = index.get(normalise_text(ann.text).lower())
        if k is not None:
            keep.append(i)
            rows.append(stored[k])
    return keep, (np.array(rows, dtype=np.float32) if rows else np.zeros((0, stored.shape[1]), dtype=np.float32))


def label_studio_tasks(suspects: Sequence[Suspect], model_version: str) -> list[dict[str, Any]]:
    """Label Studio tasks: the statement, its current labels as data, the model's suggestion
    as a pre-annotation the reviewer accepts or corrects (labels config: one Choices control
    named `stance`, multiple choice, over the four labels plus `none`)."""
    return [
        {
            "data": {
                "text": s.text,
                "source": s.source,
                "current_labels": s.labels or ["none"],
                "audit_rank": s.rank,
                "audit_quality": round(s.quality, 6),
            },
            "predictions": [
                {
                    "model_version": model_version,
                    "score": round(1 - s.quality, 6),
                    "result": [
                        {
                            "from_name": LABEL_STUDIO_FROM,
                            "to_name": LABEL_STUDIO_TO,
                            "type": "choices",
                            "value": {"choices": s.suggested or ["none"]},
                        }
                    ],
                }
            ],
        }
        for s in suspects
    ]
