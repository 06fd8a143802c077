"""Which CPU runtime scores the default model fastest without changing its decisions?

One run, one machine, the same held-out statements of one bundle (the documents its
training never saw, chosen exactly as training/train.py chooses them), batches of
`inference.batch_size`, tokenisation included. For every runtime: statements/s with one
stream of all threads and with the service's arrangement (`inference.streams` streams of
threads/streams threads), per-decision and label-set agreement with fp32 torch, macro-F1
against the gold labels and its delta. Decisions go through the bundle's own calibration
and thresholds (Bundle.decide), so they are the product's decisions. Static quantisation
(ORT QDQ, NNCF) is calibrated on training statements, never on the held-out ones.

Usage: .venv/bin/python benchmarks/runtimes.py [BUNDLE_DIR] [--repeats N]
Writes benchmarks/runtimes.json and prints the table. To give the process priority on
the shared machine it writes -10 into its own /proc/self/autogroup (where permitted).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, get_args

import numpy as np
import yaml

from training.annotations import annotation_files, load_annotations
from training.backends import Backend, StreamedBackend, load_tokenizer
from training.bundle import MODEL_DIR, load_bundle
from training.data import split_holdout, texts_and_targets
from training.metrics import point_metrics
from training.runtimes import Exporter, load_runtime
from training.settings import RuntimeName, Settings, load_settings

OUT = Path(__file__).with_name("runtimes.json")
DEFAULT_BUNDLE = "models/v20261129-210915-2566"
CALIBRATION_STATEMENTS = 300  # training statements for static quantisation (ORT QDQ, NNCF)
PASSES_OF_HELD_OUT = 2  # each timed pass scores the held-out statements this many times over
PACKAGES = ("torch", "transformers", "onnxruntime", "openvino", "nncf", "ctranslate2")
RUNTIMES = get_args(RuntimeName)  # every runtime a bundle can carry


def prioritise() -> str:
    """Raise this process's autogroup priority (nice does not act across sessions)."""
    try:
        Path("/proc/self/autogroup").write_text("-10")
        return Path("/proc/self/autogroup").read_text().strip()
    except OSError as exc:
        return f"not set ({exc})"


def package_info() -> dict[str, dict[str, str]]:
    out = {}
    for name in PACKAGES:
        try:
            meta = importlib.metadata.metadata(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = {"version": "not installed"}
            continue
        licence = meta.get("License-Expression") or meta.get("License") or ""
        out[name] = {"version": meta["Version"], "license": licence.splitlines()[0][:60] if licence else "?"}
    return out


def held_out_split(bundle_dir: Path, root: Path) -> tuple[Settings, list[Any], list[Any]]:
    """(settings the bundle was trained with, training and held-out annotations): the same
    split training/train.py made (holdout fraction and salt of the bundle's config)."""
    trained = yaml.safe_load((bundle_dir / "training_config.yaml").read_text())
    settings = load_settings(root=root)
    settings = settings.with_overrides(training=trained["training"])
    anns = load_annotations(annotation_files(settings.paths.annotations_dir), settings.labels).annotations
    train, held = split_holdout(anns, settings.training.holdout_fraction, settings.training.holdout_salt)
    return settings, train, held


def decisions(bundle: Any, logits: np.ndarray) -> np.ndarray:
    """The product's decisions (calibration + thresholds) as a 0/1 matrix."""
    a, b = bundle.calibration
    preds = bundle.decide(1.0 / (1.0 + np.exp(-(logits * a + b))))
    return np.array([[int(n in p.labels) for n in bundle.labels] for p in preds], dtype=int)


def naive_pipeline(model_dir: Path, batch_size: int, threads: int) -> Callable[[Sequence[str]], np.ndarray]:
    """`transformers.pipeline` as a newcomer would call it: logits out, the pipeline's batching."""
    import torch
    from transformers import pipeline

    import training.modeling  # noqa: F401  (registers the bundle's model type)

    torch.set_num_threads(threads)
    pipe = pipeline("text-classification", model=str(model_dir), top_k=None, function_to_apply="none", device="cpu")
    labels = [pipe.model.config.id2label[i] for i in range(pipe.model.config.num_labels)]

    def predict(texts: Sequence[str]) -> np.ndarray:
        out = pipe(list(texts), batch_size=batch_size, truncation=True)
        return np.array([[{d["label"]: d["score"] for d in row}[n] for n in labels] for row in out], dtype=np.float32)

    return predict


def ctranslate2_encoder(model_dir: Path, workdir: Path) -> Path:
    """Convert the encoder for CTranslate2 (int8). CTranslate2 converts stock BertModel
    checkpoints; ours wraps one under `bert.` with its own mean-pooling head."""
    from ctranslate2.converters import TransformersConverter
    from transformers import BertConfig, BertModel

    from training.modeling import MeanPoolBertForSequenceClassification

    model = MeanPoolBertForSequenceClassification.from_pretrained(model_dir, local_files_only=True)
    plain = workdir / "bert"
    cfg = BertConfig(**{k: v for k, v in model.config.to_dict().items() if k not in ("model_type", "architectures")})
    bert = BertModel(cfg, add_pooling_layer=True)
    bert.load_state_dict(model.bert.state_dict(), strict=False)
    bert.save_pretrained(plain)
    load_tokenizer(model_dir).save_pretrained(plain)
    out = workdir / "ct2"
    TransformersConverter(str(plain)).convert(str(out), quantization="int8", force=True)
    return out


class CTranslate2Backend(StreamedBackend):
    """CTranslate2's int8 encoder + our mean pooling and linear head in numpy (benchmark only)."""

    def __init__(
        self,
        ct2_dir: Path,
        model_dir: Path,
        tokenizer: Any,
        max_length: int,
        batch_size: int,
        threads: int,
        streams: int,
    ) -> None:
        import ctranslate2
        from safetensors.numpy import load_file

        super().__init__(tokenizer, max_length, batch_size, streams)
        self.encoder = ctranslate2.Encoder(
            str(ct2_dir),
            device="cpu",
            compute_type="int8",
            inter_threads=self.streams,
            intra_threads=max(1, threads // self.streams),
        )
        head = load_file(str(model_dir / "model.safetensors"))
        self.w, self.b = head["classifier.weight"], head["classifier.bias"]

    def _forward(self, enc: Any) -> np.ndarray:
        lengths = enc["attention_mask"].sum(axis=1)
        ids = [row[:n].tolist() for row, n in zip(enc["input_ids"], lengths, strict=True)]
        hidden = np.array(self.encoder.forward_batch(ids).last_hidden_state)
        mask = (np.arange(hidden.shape[1])[None, :] < lengths[:, None]).astype(np.float32)[..., None]
        pooled = (hidden * mask).sum(1) / mask.sum(1)
        return pooled @ self.w.T + self.b


def timed_rounds(
    predictors: dict[tuple[str, str], Callable[[Sequence[str]], np.ndarray]], texts: list[str], rounds: int
) -> dict[tuple[str, str], list[float]]:
    """statements/s of every (runtime, arrangement), interleaved: each round times every one
    once, so load from other users of the shared machine falls on all of them alike."""
    for predict in predictors.values():
        predict(texts[:64])  # warm-up: first calls allocate buffers
    out: dict[tuple[str, str], list[float]] = {key: [] for key in predictors}
    for r in range(rounds):
        for key, predict in predictors.items():
            start = time.perf_counter()
            predict(texts)
            out[key].append(len(texts) / (time.perf_counter() - start))
        print(f"round {r + 1}/{rounds}, load {os.getloadavg()[0]:.1f}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", nargs="?", default=DEFAULT_BUNDLE)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timed passes; the median is reported")
    parser.add_argument("--only", nargs="*", default=None, help="runtimes to measure (default: all)")
    args = parser.parse_args()
    autogroup = prioritise()
    root = Path.cwd()
    bundle_dir = Path(args.bundle).resolve()
    settings, train, held_anns = held_out_split(bundle_dir, root)
    inf = settings.inference
    labels = list(settings.labels)
    held, gold = texts_and_targets(held_anns, labels)
    rng = np.random.default_rng(settings.training.seed)
    calib = [train[i].text for i in rng.choice(len(train), min(CALIBRATION_STATEMENTS, len(train)), replace=False)]
    bundle = load_bundle(bundle_dir, inf, backend="torch", threads=inf.threads)
    max_length = int(bundle.meta.get("max_length", 128))
    tokenizer = bundle.backend.tokenizer
    mean_tokens = float(np.mean([len(tokenizer(t, truncation=True, max_length=max_length)["input_ids"]) for t in held]))
    setups = {"1x2threads": 1, f"{inf.streams}streams_x_{inf.threads // inf.streams}thread": inf.streams}
    want = set(args.only or ["naive_pipeline", *RUNTIMES, "ctranslate2-int8"])
    rows: list[dict[str, Any]] = []
    errors: dict[str, str] = {}
    export_s: dict[str, float] = {}
    load_avg_start = os.getloadavg()

    reference = decisions(bundle, bundle.backend.predict_logits(held))
    predictors: dict[tuple[str, str], Callable[[Sequence[str]], np.ndarray]] = {}
    with tempfile.TemporaryDirectory(prefix="runtimes-") as tmp:
        work = Path(tmp)
        exporter = Exporter(bundle.backend.model, tokenizer, work, calib, max_length)
        makers: dict[str, Callable[[int], Backend]] = {}
        for name in RUNTIMES:
            if name in want:
                makers[name] = lambda streams, name=name: load_runtime(
                    name,
                    work if name != "torch" else bundle_dir,
                    max_length=max_length,
                    batch_size=inf.batch_size,
                    threads=inf.threads,
                    streams=streams,
                    tokenizer=tokenizer if name != "torch" else None,
                )
        for name in list(makers):
            try:
                start = time.perf_counter()
                exporter.export(name)
                export_s[name] = round(time.perf_counter() - start, 1)
            except Exception as exc:  # noqa: BLE001 - reported in the JSON, the run goes on
                errors[name] = f"{type(exc).__name__}: {exc}"[:400]
                del makers[name]
        if "ctranslate2-int8" in want:
            try:
                start = time.perf_counter()
                ct2 = ctranslate2_encoder(bundle_dir / MODEL_DIR, work)
                export_s["ctranslate2-int8"] = round(time.perf_counter() - start, 1)
                makers["ctranslate2-int8"] = lambda streams: CTranslate2Backend(
                    ct2, bundle_dir / MODEL_DIR, tokenizer, max_length, inf.batch_size, inf.threads, streams
                )
            except Exception as exc:  # noqa: BLE001 - reported, not fatal
                errors["ctranslate2-int8"] = f"{type(exc).__name__}: {exc}"[:400]
        if "naive_pipeline" in want:
            predictors[("naive_pipeline", "1x2threads")] = naive_pipeline(
                bundle_dir / MODEL_DIR, inf.batch_size, inf.threads
            )
        for name, make in makers.items():
            for setup, streams in setups.items():
                if name == "torch" and streams > 1:
                    continue  # torch's thread pool is process-wide: one arrangement only
                try:
                    predictors[(name, setup)] = make(streams).predict_logits
                except Exception as exc:  # noqa: BLE001
                    errors[f"{name} {setup}"] = f"{type(exc).__name__}: {exc}"[:400]
        by_runtime: dict[str, dict[str, Any]] = {}
        for (name, _setup), predict in predictors.items():
            row = by_runtime.setdefault(name, {"runtime": name})
            if "decisions" not in row:
                row["decisions"] = decisions(bundle, predict(held))
        rates = timed_rounds(predictors, held * PASSES_OF_HELD_OUT, args.rounds)
        for (name, setup), values in rates.items():
            by_runtime[name][f"statements_per_s_{setup}"] = round(statistics.median(values), 1)
            by_runtime[name][f"best_of_rounds_{setup}"] = round(max(values), 1)
        for row in by_runtime.values():
            dec = row["decisions"]
            row["macro_f1"] = round(point_metrics(gold, dec, labels)["macro_f1"], 4)
            row["decision_agreement"] = round(float((dec == reference).mean()), 4)
            row["label_set_agreement"] = round(float((dec == reference).all(axis=1).mean()), 4)
            rows.append(row)

    f1_ref = point_metrics(gold, reference, labels)["macro_f1"]
    naive = next((r for r in rows if r["runtime"] == "naive_pipeline"), None)
    for r in rows:
        r.pop("decisions")
        r["macro_f1_delta"] = round(r["macro_f1"] - f1_ref, 4)
        best = max(v for k, v in r.items() if k.startswith("statements_per_s"))
        r["fastest_arrangement_statements_per_s"] = best
        if naive:
            r["speedup_vs_naive"] = round(best / naive["statements_per_s_1x2threads"], 2)
        r["passes"] = bool(
            r.get("decision_agreement", 0) >= inf.int8_min_agreement
            and -r["macro_f1_delta"] < inf.int8_max_macro_f1_drop
        )
        if r["runtime"] in export_s:
            r["export_s"] = export_s[r["runtime"]]
    result = {
        "command": "nice -n 15 .venv/bin/python benchmarks/runtimes.py " + str(args.bundle),
        "bundle": bundle_dir.name,
        "held_out": {
            "statements": len(held),
            "documents": len({a.source for a in held_anns}),
            "mean_tokens": round(mean_tokens, 1),
        },
        "calibration": f"{len(calib)} training statements (seed {settings.training.seed})",
        "batch_size": inf.batch_size,
        "threads": inf.threads,
        "timed": f"{PASSES_OF_HELD_OUT} x the held-out statements per pass; {args.rounds} rounds, each timing every "
        "runtime once (interleaved, so the shared machine's load falls on all alike); median reported, best kept",
        "rule": f"passes: decision agreement >= {inf.int8_min_agreement} and macro-F1 drop < "
        f"{inf.int8_max_macro_f1_drop}",
        "fp32_macro_f1": round(f1_ref, 4),
        "rows": rows,
        "errors": errors,
        "packages": package_info(),
        "machine": {
            "cpus": os.cpu_count(),
            "autogroup": autogroup,
            "load_avg_start": [round(x, 2) for x in load_avg_start],
            "load_avg_end": [round(x, 2) for x in os.getloadavg()],
        },
    }
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))


def table(result: dict[str, Any]) -> str:
    """The comparison as a Markdown table (README)."""
    setups = sorted({k for r in result["rows"] for k in r if k.startswith("statements_per_s_")})
    head = "| runtime | " + " | ".join(s.removeprefix("statements_per_s_") + " st/s" for s in setups)
    head += " | x naive | decision agr. | label-set agr. | macro-F1 (delta) | passes |"
    lines = [head, "|" + "---|" * (len(setups) + 6)]
    for r in result["rows"]:
        cells = [str(r.get(s, "-")) for s in setups]
        lines.append(
            f"| {r['runtime']} | "
            + " | ".join(cells)
            + f" | {r.get('speedup_vs_naive', '-')} | {r.get('decision_agreement', 0):.2%} | "
            f"{r.get('label_set_agreement', 0):.2%} | {r['macro_f1']:.4f} ({r['macro_f1_delta']:+.4f}) | "
            f"{'yes' if r['passes'] else 'no'} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
