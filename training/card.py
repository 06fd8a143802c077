"""The model card (the bundle's README.md) and its precision-recall plots."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

EXPERIMENTS_REPORT = Path("reports/experiments.json")


def pr_plots(
    targets: np.ndarray,
    curves: dict[str, np.ndarray],
    thresholds: dict[str, float],
    labels: Sequence[str],
    out_dir: Path,
    decision: Any = None,
) -> dict[str, Path]:
    """One PNG per label: out-of-fold precision-recall of each system; the transformer's
    operating point (its shipped decision policy applied to the same scores) marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, precision_score, recall_score

    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for j, name in enumerate(labels):
        fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
        for system, probs in curves.items():
            if targets[:, j].sum() == 0:
                continue
            p, r, cuts = precision_recall_curve(targets[:, j], probs[:, j])
            ax.plot(r, p, label=system)
            if system == "transformer":
                if decision is not None:
                    yes = decision.decide(probs)[:, j]
                    point, text = (
                        (
                            recall_score(targets[:, j], yes, zero_division=0),
                            precision_score(targets[:, j], yes, zero_division=0),
                        ),
                        "shipped decision",
                    )
                else:
                    k = min(int(np.searchsorted(cuts, thresholds[name])), len(cuts) - 1)
                    point, text = (r[k], p[k]), f"threshold {thresholds[name]:.2f}"
                ax.scatter([point[0]], [point[1]], color="black", zorder=3, label=text)
        ax.set(xlabel="recall", ylabel="precision", title=f"{name} (out of fold)", xlim=(0, 1.02), ylim=(0, 1.02))
        ax.legend(loc="lower left", fontsize=8)
        fig.tight_layout()
        path = out_dir / f"pr_{name}.png"
        fig.savefig(path)
        plt.close(fig)
        files[f"plots/pr_{name}.png"] = path
    return files


def reliability_plots(calibration: dict[str, Any], labels: Sequence[str], out_dir: Path) -> dict[str, Path]:
    """One PNG: per label, observed rate against mean score per bin, before and after
    calibration (cross-fitted, out of fold); the diagonal is perfect calibration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(labels), figsize=(4 * len(labels), 4), dpi=100, squeeze=False)
    for ax, name in zip(axes[0], labels, strict=False):
        c = calibration[name]
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        for key, style, tag in (
            ("reliability_raw", "o--", f"raw (ECE {c['ece_raw']:.3f})"),
            ("reliability", "s-", f"calibrated (ECE {c['ece']:.3f})"),
        ):
            pts = c[key]
            ax.plot([q["score"] for q in pts], [q["rate"] for q in pts], style, markersize=4, label=tag)
        ax.set(xlabel="mean score in bin", ylabel="observed rate", title=name, xlim=(0, 1), ylim=(0, 1))
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path = out_dir / "reliability.png"
    fig.savefig(path)
    plt.close(fig)
    return {"plots/reliability.png": path}


def _ci(m: dict[str, Any], key: str) -> str:
    lo, hi = m.get(f"{key}_ci", [float("nan"), float("nan")])
    return f"{m[key]:.3f} [{lo:.3f}, {hi:.3f}]"


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _experiments_table(report: dict[str, Any] | None) -> str:
    if not report:
        return "_No experiment report yet: run `stance experiments` to compare training ideas in grouped CV._\n"
    rows = ["| variant | what changes | CV macro-F1 [95% CI] | none -> stance | kept |", "|---|---|---|---|---|"]
    for r in report["variants"]:
        rows.append(
            f"| {r['name']} | {r['description']} | {_ci(r['metrics'], 'macro_f1')} | "
            f"{_rate(r['metrics'].get('none_false_stance_rate'))} | {'yes' if r.get('kept') else 'no'} |"
        )
    return (
        f"Grouped {report['n_folds']}-fold CV on the same folds, {report['n_statements']} statements, decision "
        f"policy `{report.get('policy')}` (`stance experiments`; each row's exact command and date are in "
        f"`{EXPERIMENTS_REPORT}`).\n\n"
        + "\n".join(rows)
        + "\n\n"
        + report.get("conclusion", "")
        + "\n\n"
        + report.get("note", "")
        + "\n"
    )


def _learning_curve(curve: dict[str, Any] | None, cv: dict[str, Any]) -> list[str]:
    if not curve:
        return ["_No learning curve yet: `stance experiments --learning-curve 0.25,0.5,0.75`._", ""]
    rows = ["| share of training documents | statements per fold | CV macro-F1 [95% CI] |", "|---|---|---|"]
    for p in curve["points"]:
        rows.append(f"| {p['fraction']:.0%} | {p['n_train_statements']} | {_ci(p, 'macro_f1')} |")
    return [
        f"What more annotation buys: the same recipe and folds trained on a share of each fold's training "
        f"documents (`{curve['command']}`); 100% is this model's CV above.",
        "",
        *rows,
        "",
    ]


def model_card(metrics: dict[str, Any], meta: dict[str, Any], root: Path) -> str:
    labels = meta["labels"]
    cv = metrics["cv"]
    data = metrics["data"]
    lines = [
        f"# Stance model {meta['version']}",
        "",
        "Multi-label stance classifier for statements about Ukraine's path into NATO, fine-tuned from "
        f"`{meta['base_model']}` (sigmoid per label, Platt-calibrated scores). Labels and their meaning: "
        "`ANNOTATION_GUIDE.md` (`" + "`, `".join(labels) + "`; none of them = none).",
        "",
        f"**Serving backend: {meta['default_backend']}**. {meta.get('backend_reason', '')}",
        "",
        "## Data",
        f"- {data['n_statements']} statements from {data['n_sources']} source documents ({', '.join(data['files'])}).",
        f"- {data['n_train']} statements train (and cross-validate); {data['n_holdout']} statements from "
        f"{data['n_holdout_sources']} documents are frozen out of every training run (the held-out gate set).",
        "- Label counts (training part): " + ", ".join(f"{k} {v}" for k, v in data["label_counts"].items()),
        "",
        "## Quality on unseen articles",
    ]
    if cv.get("reused_from"):
        lines += [
            f"_Quick retrain: no CV in this run; the figures below and the decision policy are those of "
            f"`{cv['reused_from']}`, whose recipe this run repeated on the new data. The held-out gate "
            f"figures further down are this model's own._",
            "",
        ]
    lines += [
        f"Grouped {cv['n_folds']}-fold cross-validation by source document (a document never straddles "
        f"train and validation); decision policy `{cv.get('policy', meta.get('policy'))}` cross-fitted (fitted on "
        f"the other folds). Intervals: {int(cv['transformer']['confidence'] * 100)}% bootstrap over source "
        'documents. "none -> stance": share of `none` statements given a stance (all of them; and in the '
        "corpus articles, annotated statement by statement in full, as a feed is).",
        "",
        "| system | macro-F1 [95% CI] | micro-F1 [95% CI] | none -> stance | in whole articles |",
        "|---|---|---|---|---|",
    ]
    for system in ("transformer", "tfidf_logreg", "keyword_rules"):
        m = cv[system]
        lines.append(
            f"| {system} | {_ci(m, 'macro_f1')} | {_ci(m, 'micro_f1')} | "
            f"{_rate(m.get('none_false_stance_rate'))} | {_rate(m.get('article_none_false_stance_rate'))} |"
        )
    cal = cv.get("calibration", {})
    lines += [
        "",
        "Per label (transformer, CV):",
        "",
        "| label | precision | recall | F1 [95% CI] | support | threshold (calibrated) | ECE raw -> calibrated |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in labels:
        pl = cv["transformer"]["per_label"][name]
        lo, hi = pl["f1_ci"]
        ece = f"{cal[name]['ece_raw']:.3f} -> {cal[name]['ece']:.3f}" if name in cal else "n/a"
        lines.append(
            f"| {name} | {pl['precision']:.3f} | {pl['recall']:.3f} | {pl['f1']:.3f} [{lo:.3f}, {hi:.3f}] | "
            f"{pl['support']} | {meta['thresholds'][name]:.3f} | {ece} |"
        )
    if cv.get("policies"):
        lines += [
            "",
            "Decision policies on the same out-of-fold scores (each fitted on the other folds; `training/policy.py`):",
            "",
            "| policy | macro-F1 [95% CI] | none -> stance | in whole articles | shipped |",
            "|---|---|---|---|---|",
        ]
        for name, m in cv["policies"].items():
            lines.append(
                f"| {name} | {_ci(m, 'macro_f1')} | {_rate(m['none_false_stance_rate'])} | "
                f"{_rate(m['article_none_false_stance_rate'])} | {'yes' if name == meta.get('policy') else ''} |"
            )
    if cal:
        lines += [
            "",
            "Calibration: reported scores are probabilities (per-label Platt scaling of the logit, "
            "fitted out of fold). Reliability diagram: `plots/reliability.png`.",
            "",
        ]
    hold = metrics.get("holdout")
    if hold and hold.get("transformer"):
        lines += [
            "",
            f"Held-out gate set ({hold['transformer']['n']} statements from {len(hold['sources'])} documents, never "
            f"trained on): transformer macro-F1 {_ci(hold['transformer'], 'macro_f1')}, none -> stance "
            f"{_rate(hold['transformer'].get('none_false_stance_rate'))}; "
            f"TF-IDF {hold['tfidf_logreg']['macro_f1']:.3f}, "
            f"keywords {hold['keyword_rules']['macro_f1']:.3f}.",
        ]
    lines += [
        "",
        "Precision-recall curves per label (out of fold): `plots/pr_<label>.png`.",
        "",
        "## Learning curve",
        *_learning_curve(metrics.get("learning_curve"), cv),
    ]
    lines += _inference_section(metrics, meta)
    lines += [
        "## Training ideas compared",
        _experiments_table(metrics.get("experiments")),
        "## Training",
        f"- Config: `training_config.yaml` in this bundle. Seconds: {metrics['timing']['total_s']:.0f} in all, "
        f"{metrics['timing']['fits_s']:.0f} for the fine-tunes "
        f"({metrics['timing'].get('parallel_fits', 1)} at a time).",
        "- Reproduce: `stance train` (deterministic under `training.seed`).",
        "",
        "## Limitations",
        "- Small data (about two thousand statements, one topic, English); statements from batches are paraphrased.",
        "- Long texts are segmented into statements; the model never sees more than "
        f"{meta['max_length']} tokens at once.",
        "- A false stance costs more than a missed one (guide): the decision policy is chosen by grouped CV and "
        "its none -> stance rate is reported above; raise a label's threshold in `bundle.json` for more precision.",
    ]
    return "\n".join(lines) + "\n"


def _inference_section(metrics: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    """Every candidate runtime's verdict against fp32 (training/runtime_choice.py)."""
    runtimes = metrics.get("runtimes")
    if not runtimes:
        return []
    lines = [
        "## Inference",
        "| runtime | on | decision agreement | label-set agreement | macro-F1 (fp32) | passes |",
        "|---|---|---|---|---|---|",
    ]
    for name in runtimes.get("order", runtimes["candidates"]):
        v = runtimes["candidates"][name]
        if "decision_agreement" not in v:
            lines.append(f"| {name} | - | - | - | - | no: {v['verdict']} |")
            continue
        lines.append(
            f"| {name} | {v['n']} {v['on']} | {v['decision_agreement']:.4f} | {v['statement_agreement']:.4f} | "
            f"{v['macro_f1']:.4f} ({v['macro_f1_fp32']:.4f}) | {'yes' if v['ok'] else 'no'} |"
        )
    lines += [
        "",
        f"- Default backend: **{meta['default_backend']}**: {runtimes['reason']}.",
        f"- Runtime files carried: {', '.join(runtimes['carried']) or 'none (model/ only)'}; "
        f"exports and checks took {runtimes['seconds']:.0f} s.",
        "",
    ]
    return lines
