"""The model card (the bundle's README.md) and its precision-recall plots."""

from __future__ import annotations

import json
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
) -> dict[str, Path]:
    """One PNG per label: out-of-fold precision-recall of each system; the chosen
    threshold of the transformer marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

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
                k = int(np.searchsorted(cuts, thresholds[name]))
                k = min(k, len(cuts) - 1)
                ax.scatter([r[k]], [p[k]], color="black", zorder=3, label=f"threshold {thresholds[name]:.2f}")
        ax.set(xlabel="recall", ylabel="precision", title=f"{name} (out of fold)", xlim=(0, 1.02), ylim=(0, 1.02))
        ax.legend(loc="lower left", fontsize=8)
        fig.tight_layout()
        path = out_dir / f"pr_{name}.png"
        fig.savefig(path)
        plt.close(fig)
        files[f"plots/pr_{name}.png"] = path
    return files


def _ci(m: dict[str, Any], key: str) -> str:
    lo, hi = m.get(f"{key}_ci", [float("nan"), float("nan")])
    return f"{m[key]:.3f} [{lo:.3f}, {hi:.3f}]"


def _experiments_table(root: Path) -> str:
    path = root / EXPERIMENTS_REPORT
    if not path.is_file():
        return "_No experiment report yet: run `stance experiments` to compare training ideas in grouped CV._\n"
    report = json.loads(path.read_text())
    rows = ["| variant | what changes | CV macro-F1 [95% CI] | CV micro-F1 | kept |", "|---|---|---|---|---|"]
    for r in report["variants"]:
        rows.append(
            f"| {r['name']} | {r['description']} | {_ci(r['metrics'], 'macro_f1')} | "
            f"{r['metrics']['micro_f1']:.3f} | {'yes' if r.get('kept') else 'no'} |"
        )
    return (
        f"Grouped {report['n_folds']}-fold CV on the same folds (`stance experiments`; each "
        f"row's exact command and date are in `{EXPERIMENTS_REPORT}`).\n\n" + "\n".join(rows) + "\n\n" + report.get("conclusion", "") + "\n\n"
        + report.get("note", "") + "\n"
    )


def model_card(metrics: dict[str, Any], meta: dict[str, Any], root: Path) -> str:
    labels = meta["labels"]
    cv = metrics["cv"]
    lines = [
        f"# Stance model {meta['version']}",
        "",
        "Multi-label stance classifier for statements about Ukraine's path into NATO, fine-tuned from "
        f"`{meta['base_model']}` (sigmoid per label). Labels and their meaning: "
        "`ANNOTATION_GUIDE.md` (`" + "`, `".join(labels) + "`; none of them = none).",
        "",
        "## Data",
        f"- {metrics['data']['n_statements']} statements from {metrics['data']['n_sources']} source documents "
        f"({', '.join(metrics['data']['files'])}).",
        f"- {metrics['data']['n_train']} statements train (and cross-validate); {metrics['data']['n_holdout']} "
        f"statements from {metrics['data']['n_holdout_sources']} documents are frozen out of every training "
        "run (the held-out gate set).",
        "- Label counts (training part): "
        + ", ".join(f"{k} {v}" for k, v in metrics["data"]["label_counts"].items()),
        "",
        "## Quality on unseen articles",
        f"Grouped {cv['n_folds']}-fold cross-validation by source document (a document never straddles "
        "train and validation); thresholds cross-fitted (chosen on the other folds). Intervals: "
        f"{int(cv['transformer']['confidence'] * 100)}% bootstrap over source documents.",
        "",
        "| system | macro-F1 [95% CI] | micro-F1 [95% CI] |",
        "|---|---|---|",
    ]
    for system in ("transformer", "tfidf_logreg", "keyword_rules"):
        m = cv[system]
        lines.append(f"| {system} | {_ci(m, 'macro_f1')} | {_ci(m, 'micro_f1')} |")
    lines += ["", "Per label (transformer, CV):", "", "| label | precision | recall | F1 [95% CI] | support | threshold |", "|---|---|---|---|---|---|"]
    for name in labels:
        pl = cv["transformer"]["per_label"][name]
        lo, hi = pl["f1_ci"]
        lines.append(
            f"| {name} | {pl['precision']:.3f} | {pl['recall']:.3f} | {pl['f1']:.3f} [{lo:.3f}, {hi:.3f}] | "
            f"{pl['support']} | {meta['thresholds'][name]:.3f} |"
        )
    hold = metrics.get("holdout")
    if hold and hold.get("transformer"):
        lines += [
            "",
            f"Held-out gate set ({hold['transformer']['n']} statements, never trained on): transformer "
            f"macro-F1 {_ci(hold['transformer'], 'macro_f1')}, TF-IDF {hold['tfidf_logreg']['macro_f1']:.3f}, "
            f"keywords {hold['keyword_rules']['macro_f1']:.3f}.",
        ]
    lines += ["", "Precision-recall curves per label (out of fold): `plots/pr_<label>.png`.", ""]
    int8 = metrics.get("int8")
    if int8:
        lines += [
            "## Inference",
            f"- int8 ONNX vs fp32 torch on all {int8['n']} annotations: label-set agreement "
            f"{int8['statement_agreement']:.4f}, per-decision agreement {int8['decision_agreement']:.4f}, "
            f"macro-F1 fp32 {int8['macro_f1_fp32']:.4f} vs int8 {int8['macro_f1_int8']:.4f}. "
            f"Default backend: **{meta['default_backend']}** ({int8['decision']}).",
            "",
        ]
    lines += [
        "## Training ideas compared",
        _experiments_table(root),
        "## Training",
        f"- Config: `training_config.yaml` in this bundle. Seconds: {metrics['timing']['total_s']:.0f} "
        f"(CV {metrics['timing']['cv_s']:.0f}, final {metrics['timing']['final_s']:.0f}).",
        "- Reproduce: `stance train` (deterministic under `training.seed`).",
        "",
        "## Limitations",
        "- Small data (hundreds of statements, one topic, English); statements from batches are paraphrased.",
        "- Long texts are segmented into statements; the model never sees more than "
        f"{meta['max_length']} tokens at once.",
        "- A false stance costs more than a missed one (guide): thresholds maximise F1 per label within "
        "the configured bounds; raise them in `bundle.json` for more precision.",
    ]
    return "\n".join(lines) + "\n"
