"""Which runtime a bundle serves: the fastest candidate that decides as fp32 torch does.

`inference.runtimes` lists the candidates in order of measured speed (benchmarks/runtimes.py).
Each is exported and checked on statements the model never trained on (the held-out
documents): it passes if its per-decision agreement with fp32 is at least
`inference.int8_min_agreement` and macro-F1 drops by less than `inference.int8_max_macro_f1_drop`.
The first passing candidate becomes the bundle's default backend; fp32 torch serves when
none passes. Every candidate's verdict is kept (metrics.json "runtimes", bundle.json).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from training.annotations import Annotation
from training.backends import sigmoid
from training.data import texts_and_targets
from training.metrics import paired_bootstrap_delta, point_metrics
from training.policy import Decision
from training.runtimes import Exporter, load_runtime
from training.settings import Settings

REFERENCE = "torch"


@dataclass
class RuntimeChoice:
    """The verdict of every candidate and the one chosen (`chosen` is "torch" if none passed)."""

    chosen: str
    reason: str
    candidates: dict[str, dict[str, Any]]
    seconds: float
    files: dict[str, Path] = field(default_factory=dict)  # bundle-relative name -> exported file

    def summary(self) -> dict[str, Any]:
        """What metrics.json and bundle.json record."""
        return {
            "chosen": self.chosen,
            "reason": self.reason,
            "order": list(self.candidates),  # fastest first, as tried (JSON files sort the keys below)
            "carried": sorted(self.files),
            "seconds": round(self.seconds, 1),
            "candidates": self.candidates,
        }


def _verdict(
    name: str,
    fp32: np.ndarray,
    other: np.ndarray,
    targets: np.ndarray,
    groups: Sequence[str],
    settings: Settings,
    where: str,
) -> dict[str, Any]:
    labels = list(settings.labels)
    inf = settings.inference
    agreement = float((fp32 == other).mean())
    f1_fp32 = point_metrics(targets, fp32, labels)["macro_f1"]
    f1 = point_metrics(targets, other, labels)["macro_f1"]
    drop_ci = paired_bootstrap_delta(targets, fp32, other, groups, settings.evaluation)
    ok = agreement >= inf.int8_min_agreement and (f1_fp32 - f1) < inf.int8_max_macro_f1_drop
    return {
        "ok": bool(ok),
        "n": len(fp32),
        "on": where,
        "decision_agreement": agreement,
        "statement_agreement": float((fp32 == other).all(axis=1).mean()),
        "macro_f1_fp32": f1_fp32,
        "macro_f1": f1,
        "macro_f1_drop_ci": drop_ci,
        "verdict": f"{name} {'passes' if ok else 'fails'}: {agreement:.2%} of decisions agree with fp32 "
        f"(minimum {inf.int8_min_agreement:.0%}), macro-F1 moves {f1 - f1_fp32:+.4f} "
        f"(maximum drop {inf.int8_max_macro_f1_drop})",
    }


def choose_runtime(
    model: Any,
    tokenizer: Any,
    workdir: Path,
    texts: list[str],
    targets: np.ndarray,
    groups: Sequence[str],
    decision: Decision,
    settings: Settings,
    calibration_texts: Sequence[str],
    unseen: bool = True,
    candidates: Sequence[str] | None = None,
) -> RuntimeChoice:
    """Export and check every candidate on `texts` (held-out unless `unseen` is False);
    the first passing one in the configured order wins."""
    from training.finetune import predict_proba

    started = time.perf_counter()
    inf = settings.inference
    max_length = settings.base_model.max_length
    where = f"{len(texts)} held-out statements" if unseen else f"all {len(texts)} statements (no held-out set)"
    fp32 = decision.decide(predict_proba(model, tokenizer, texts, max_length))
    exporter = Exporter(model, tokenizer, workdir, calibration_texts, max_length)
    verdicts: dict[str, dict[str, Any]] = {}
    chosen, files = REFERENCE, {}
    for name in candidates if candidates is not None else inf.runtimes:
        if name == REFERENCE:
            continue
        t0 = time.perf_counter()
        try:
            exported = exporter.export(name)
            backend = load_runtime(
                name,
                workdir,
                max_length=max_length,
                batch_size=inf.batch_size,
                threads=inf.threads,
                streams=inf.streams,
                tokenizer=tokenizer,
            )
            other = decision.decide(sigmoid(backend.predict_logits(texts)))
            verdict = _verdict(name, fp32, other, targets, groups, settings, where)
        except Exception as exc:  # noqa: BLE001 - a runtime that cannot run here fails its check, with the reason
            exported = {}
            verdict = {"ok": False, "verdict": f"{name} unavailable: {type(exc).__name__}: {exc}"[:500]}
        verdict["seconds"] = round(time.perf_counter() - t0, 1)
        verdict["on"] = verdict.get("on", where)
        verdicts[name] = verdict
        if verdict["ok"] and chosen == REFERENCE:
            chosen, files = name, exported
    if chosen == REFERENCE:
        tried = "; ".join(v["verdict"] for v in verdicts.values()) or "no candidate configured"
        reason = f"fp32 torch serves: no faster runtime decides as it does on {where} ({tried})"
    else:
        reason = (
            f"{chosen} serves, the fastest configured runtime that passed on {where}: " + verdicts[chosen]["verdict"]
        )
        skipped = [n for n in verdicts if n != chosen and list(verdicts).index(n) < list(verdicts).index(chosen)]
        if skipped:
            reason += f" (faster but failed: {', '.join(skipped)})"
    return RuntimeChoice(chosen, reason, verdicts, time.perf_counter() - started, files)


def check_runtimes(
    model: Any,
    tokenizer: Any,
    workdir: Path,
    annotations: Sequence[Annotation],
    train: Sequence[Annotation],
    held: Sequence[Annotation],
    decision: Decision,
    settings: Settings,
) -> RuntimeChoice:
    """Export every candidate runtime and keep the fastest that decides as fp32 does on the
    held-out statements (all statements when there is no held-out set, said so in the
    verdicts). Static quantisation is calibrated on training statements only."""
    labels = list(settings.labels)
    judged = held or annotations
    texts, targets = texts_and_targets(judged, labels)
    rng = np.random.default_rng(settings.training.seed)
    pick = rng.choice(len(train), min(settings.inference.calibration_statements, len(train)), replace=False)
    return choose_runtime(
        model,
        tokenizer,
        workdir,
        texts,
        targets,
        [a.source for a in judged],
        decision,
        settings,
        [train[i].text for i in sorted(pick)],
        unseen=bool(held),
    )
