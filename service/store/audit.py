"""The label audit over the annotation store (`stance annotations audit`, GET /v1/annotations/audit)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from service.store.repository import AnnotationStore
from training.audit import ScoreSource, Suspect, bundle_out_of_fold, rank_suspects, tfidf_out_of_fold
from training.bundle import OOF_FILE, read_meta
from training.policy import calibrate
from training.registry import Registry
from training.settings import Settings


class AuditUnavailable(ValueError):
    """The audit cannot run as asked (no bundle, no out-of-fold scores, too little data)."""


@dataclass
class AuditReport:
    scores_from: str
    model_version: str | None
    n_annotations: int
    n_audited: int
    suspects: list[Suspect]

    def to_json(self, limit: int | None = None) -> dict[str, Any]:
        shown = self.suspects[:limit] if limit else self.suspects
        return {
            "scores_from": self.scores_from,
            "model_version": self.model_version,
            "n_annotations": self.n_annotations,
            "n_audited": self.n_audited,
            "n_flagged": sum(s.flagged for s in self.suspects),
            "note": "ranked likeliest label error first (cleanlab multi-label quality on out-of-fold scores); "
            "nothing is changed: review and correct through POST /v1/annotations",
            "suspects": [s.to_json() for s in shown],
        }


def run_audit(settings: Settings, store: AnnotationStore, scores: ScoreSource = "bundle") -> AuditReport:
    """Rank the store's current labels by how likely they are wrong."""
    annotations = store.snapshot()
    labels = list(settings.labels)
    if scores == "tfidf":
        if len({a.source for a in annotations}) < 2:
            raise AuditUnavailable("the TF-IDF audit needs annotations from at least 2 source documents")
        try:
            probs = tfidf_out_of_fold(annotations, labels, settings.training.n_folds, settings.training.seed)
            suspects = rank_suspects(annotations, probs, labels, [0.5] * len(labels))
        except ValueError as exc:  # too few documents or labels for grouped folds or cleanlab
            raise AuditUnavailable(f"too little annotated data for a TF-IDF audit: {exc}") from None
        return AuditReport(
            "tfidf out-of-fold (grouped CV on the store)", None, len(annotations), len(annotations), suspects
        )
    registry = Registry(settings.paths.models_dir)
    try:
        path = registry.resolve(None)
    except Exception as exc:  # noqa: BLE001 - no current model, whatever the registry says
        raise AuditUnavailable(f"no current model to take out-of-fold scores from ({exc}); use scores=tfidf") from None
    meta = read_meta(path)
    if not (path / OOF_FILE).is_file():
        raise AuditUnavailable(
            f"model {meta['version']} has no out-of-fold scores ({OOF_FILE}; trained without CV "
            "or before audits existed); use scores=tfidf or retrain with the full CV"
        )
    keep, raw = bundle_out_of_fold(path / OOF_FILE, annotations)
    if not keep:
        raise AuditUnavailable(f"none of the store's annotations were in model {meta['version']}'s CV")
    audited = [annotations[i] for i in keep]
    cal = {k: tuple(v) for k, v in (meta.get("calibration") or {}).items()}
    probs = calibrate(raw, cal, meta["labels"])
    suspects = rank_suspects(
        audited, np.asarray(probs), meta["labels"], [meta["thresholds"][n] for n in meta["labels"]]
    )
    return AuditReport(
        f"model {meta['version']} out-of-fold (its CV)", str(meta["version"]), len(annotations), len(audited), suspects
    )
