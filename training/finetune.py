"""Fine-tune the base encoder for multi-label stance (sigmoid per label, weighted BCE).

Hugging Face `Trainer` does the loop (bf16 autocast on CPU, progress bar, seeding);
the only custom piece is the loss: BCE with a per-label `pos_weight` (neg/pos, clipped)
because the stance labels are rare next to `none`.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers import (
    AutoTokenizer,
    DataCollatorWithPadding,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)

from training.base_model import base_model_dir
from training.hf_data import training_dataset
from training.modeling import classifier_class, classifier_config
from training.settings import Settings

logging.getLogger("transformers.modeling_utils").setLevel(logging.ERROR)


class WeightedBCETrainer(Trainer):
    """Trainer whose loss weights positive examples of rare labels up, with the optional
    regularisers of the recipe (label smoothing, R-drop) and layer-wise learning-rate decay."""

    def __init__(
        self,
        *args: Any,
        pos_weight: torch.Tensor,
        distill_weight: float = 0.0,
        label_smoothing: float = 0.0,
        rdrop_alpha: float = 0.0,
        layer_lr_decay: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.pos_weight = pos_weight
        self.distill_weight = distill_weight
        self.label_smoothing = label_smoothing
        self.rdrop_alpha = rdrop_alpha
        self.layer_lr_decay = layer_lr_decay

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # type: ignore[override]
        targets = inputs.pop("labels").float()
        if self.rdrop_alpha > 0:  # two dropout passes in one batch
            doubled = {k: torch.cat([v, v]) for k, v in inputs.items()}
            outputs = model(**doubled)
            logits_a, logits_b = outputs.logits.float().chunk(2)
            loss = (self._supervised(logits_a, targets) + self._supervised(logits_b, targets)) / 2
            loss = loss + self.rdrop_alpha * bernoulli_sym_kl(logits_a, logits_b)
            outputs.logits = logits_a
        else:
            outputs = model(**inputs)
            loss = self._supervised(outputs.logits.float(), targets)
        return (loss, outputs) if return_outputs else loss

    def _supervised(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        n = logits.shape[1]
        gold = targets[:, :n]
        if self.label_smoothing > 0:
            gold = gold * (1 - self.label_smoothing) + self.label_smoothing / 2
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        loss = bce(logits, gold, pos_weight=self.pos_weight)
        if self.distill_weight > 0:  # soft targets: the teacher's probabilities
            loss = (1 - self.distill_weight) * loss + self.distill_weight * bce(logits, targets[:, n:])
        return loss

    def create_optimizer(self, model=None):  # type: ignore[override]
        if self.layer_lr_decay >= 1.0:
            return super().create_optimizer(model)
        groups = layerwise_groups(self.model, self.args.learning_rate, self.layer_lr_decay, self.args.weight_decay)
        # AdamW as the Trainer would build it, with per-layer groups; `foreach` (fused AdamW ran
        # 2x slower per step on CPU with a dozen parameter groups)
        _, kwargs = Trainer.get_optimizer_cls_and_kwargs(self.args, self.model)
        kwargs = {k: v for k, v in kwargs.items() if k != "fused"}
        self.optimizer = torch.optim.AdamW(groups, **kwargs, foreach=True)
        return self.optimizer


def bernoulli_sym_kl(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Symmetric KL between the per-label Bernoulli distributions of two passes (R-drop)."""
    pa, pb = torch.sigmoid(logits_a), torch.sigmoid(logits_b)
    la, lb = torch.nn.functional.logsigmoid(logits_a), torch.nn.functional.logsigmoid(logits_b)
    na, nb = torch.nn.functional.logsigmoid(-logits_a), torch.nn.functional.logsigmoid(-logits_b)
    kl_ab = pa * (la - lb) + (1 - pa) * (na - nb)
    kl_ba = pb * (lb - la) + (1 - pb) * (nb - na)
    return ((kl_ab + kl_ba) / 2).mean()


def layerwise_groups(model: PreTrainedModel, lr: float, decay: float, weight_decay: float) -> list[dict[str, Any]]:
    """Parameter groups whose learning rate shrinks by `decay` per layer from the head down:
    the head and the top layer learn at `lr`, the embeddings at lr * decay**(depth)."""
    depth = model.config.num_hidden_layers
    groups: dict[tuple[float, float], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if ".embeddings." in name or name.startswith("embeddings."):
            level = depth
        elif ".layer." in name:
            level = depth - 1 - int(name.split(".layer.")[1].split(".")[0])
        else:
            level = 0  # head, pooler
        wd = 0.0 if name.endswith("bias") or "LayerNorm" in name else weight_decay
        groups.setdefault((lr * decay**level, wd), []).append(param)
    return [{"params": ps, "lr": g_lr, "weight_decay": wd} for (g_lr, wd), ps in groups.items()]


class EpochAverage(TrainerCallback):
    """Uniform average of the weights at the end of the last `k` epochs: one model, the
    smoothing of an ensemble of checkpoints at no inference cost."""

    def __init__(self, k: int, epochs: float) -> None:
        self.k = k
        self.first = max(1, int(round(epochs)) - k + 1)
        self.sum: dict[str, torch.Tensor] | None = None
        self.count = 0

    def on_epoch_end(self, args, state, control, model=None, **kwargs):  # type: ignore[override]
        if model is None or round(state.epoch or 0) < self.first:
            return
        weights = {k: v.detach().float().clone() for k, v in model.state_dict().items() if v.is_floating_point()}
        if self.sum is None:
            self.sum = weights
        else:
            for key, value in weights.items():
                self.sum[key] += value
        self.count += 1

    def apply(self, model: PreTrainedModel) -> None:
        if self.sum is None or self.count < 2:
            return
        state = model.state_dict()
        for key, total in self.sum.items():
            state[key].copy_((total / self.count).to(state[key].dtype))


def pos_weights(targets: np.ndarray, cap: float) -> torch.Tensor:
    pos = targets.sum(axis=0)
    neg = len(targets) - pos
    return torch.tensor(np.clip(neg / np.maximum(pos, 1.0), 1.0, cap), dtype=torch.float32)


def load_tokenizer(settings: Settings) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(base_model_dir(settings.base_model), local_files_only=True)


def fine_tune(
    texts: Sequence[str],
    targets: np.ndarray,
    settings: Settings,
    seed: int | None = None,
    progress: bool = True,
    teacher_probs: np.ndarray | None = None,
    distill_weight: float = 0.5,
    keep_layers: Sequence[int] | None = None,
    callbacks: Sequence[TrainerCallback] | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A model fine-tuned on (texts, multi-hot targets), in eval mode, fp32 weights.

    With `teacher_probs` the loss mixes in BCE against a teacher's probabilities
    (knowledge distillation, weight `distill_weight`). `keep_layers` (default: the first
    `training.encoder_layers`, or all) picks the base encoder's layers to keep, in order."""
    cfg = settings.training
    seed = cfg.seed if seed is None else seed
    torch.set_num_threads(cfg.threads)
    set_seed(seed)
    labels = list(settings.labels)
    tokenizer = load_tokenizer(settings)
    base = base_model_dir(settings.base_model)
    config = classifier_config(
        base,
        cfg.pooling,
        num_labels=len(labels),
        problem_type="multi_label_classification",
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
    )
    model = classifier_class(cfg.pooling).from_pretrained(base, config=config, local_files_only=True)
    if keep_layers is None and cfg.encoder_layers:
        keep_layers = range(min(cfg.encoder_layers, config.num_hidden_layers))
    if keep_layers is not None:
        _keep_encoder_layers(model, list(keep_layers))
    # labels = gold targets, then (distillation) the teacher's probabilities
    train_targets = targets if teacher_probs is None else np.hstack([targets, teacher_probs])
    train_set = training_dataset(texts, train_targets, tokenizer, settings.base_model.max_length)
    with tempfile.TemporaryDirectory(prefix="stance-train-") as out_dir:
        args = TrainingArguments(
            output_dir=out_dir,
            per_device_train_batch_size=cfg.batch_size,
            num_train_epochs=cfg.epochs,
            learning_rate=cfg.learning_rate,
            weight_decay=cfg.weight_decay,
            warmup_steps=cfg.warmup_ratio,  # a float < 1 is a ratio of all steps in transformers 5
            lr_scheduler_type="linear",
            bf16=cfg.bf16,
            use_cpu=True,
            seed=seed,
            data_seed=seed,
            save_strategy="no",
            logging_strategy="no",
            report_to="none",
            disable_tqdm=not progress,
            dataloader_num_workers=0,
            train_sampling_strategy="group_by_length",  # similar lengths per batch: less padding, faster steps
        )
        trainer = WeightedBCETrainer(
            model=model,
            args=args,
            train_dataset=train_set,
            data_collator=DataCollatorWithPadding(tokenizer),
            processing_class=tokenizer,
            pos_weight=pos_weights(targets, cfg.pos_weight_max),
            distill_weight=0.0 if teacher_probs is None else distill_weight,
            label_smoothing=cfg.label_smoothing,
            rdrop_alpha=cfg.rdrop_alpha,
            layer_lr_decay=cfg.layer_lr_decay,
            callbacks=list(callbacks or ()),
        )
        average = EpochAverage(cfg.average_last_epochs, cfg.epochs) if cfg.average_last_epochs > 1 else None
        if average is not None:
            trainer.add_callback(average)
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries the CLI's JSON result
            trainer.train()
    # accelerate patches forward() with a bf16 autocast wrapper; strip it so the model
    # exports to ONNX and predicts in plain fp32.
    model = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)
    if average is not None:
        average.apply(model)
    return model.float().eval(), tokenizer


def _keep_encoder_layers(model: PreTrainedModel, keep: list[int]) -> None:
    layers = model.bert.encoder.layer
    model.bert.encoder.layer = torch.nn.ModuleList([layers[i] for i in keep])
    model.config.num_hidden_layers = len(keep)


def student_layers(teacher_depth: int, n: int, pick: str) -> list[int]:
    """'first': layers 0..n-1; 'spread': n layers evenly spaced from the first to the last
    (the last feeds the teacher's head, so the student's head starts on familiar ground)."""
    n = min(n, teacher_depth)
    if pick == "first" or n == 1:
        return list(range(n))
    return sorted({round(i * (teacher_depth - 1) / (n - 1)) for i in range(n)})


def fit_recipe(
    texts: Sequence[str],
    targets: np.ndarray,
    settings: Settings,
    seed: int | None = None,
    callbacks: Sequence[TrainerCallback] | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The configured recipe: a plain fine-tune, or with `training.distill_layers` set, a
    full-depth teacher fine-tuned first and a student made of the teacher's first N
    layers (and head) fine-tuned on gold labels + the teacher's probabilities. The
    student is what ships: ~6/N times faster to score (grouped CV measures the cost)."""
    cfg = settings.training
    if cfg.distill_layers is None:
        return fine_tune(texts, targets, settings, seed=seed, callbacks=callbacks)
    teacher, tokenizer = fine_tune(
        texts, targets, settings.with_overrides(training={"encoder_layers": None}), seed=seed, callbacks=callbacks
    )
    soft = predict_proba(teacher, tokenizer, texts, settings.base_model.max_length)
    with tempfile.TemporaryDirectory(prefix="stance-teacher-") as tmp:
        teacher.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        student_settings = settings.with_overrides(base_model={"path": tmp}, training={"encoder_layers": None})
        keep = student_layers(teacher.config.num_hidden_layers, cfg.distill_layers, cfg.distill_pick)
        student, _ = fine_tune(
            texts,
            targets,
            student_settings,
            seed=seed,
            teacher_probs=soft,
            distill_weight=cfg.distill_weight,
            keep_layers=keep,
            callbacks=callbacks,
        )
    return student, tokenizer


@torch.inference_mode()
def predict_proba(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    max_length: int,
    batch_size: int = 64,
) -> np.ndarray:
    """fp32 sigmoid probabilities, (n, labels)."""
    model.eval()
    out = []
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(
            list(texts[i : i + batch_size]),
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        out.append(torch.sigmoid(model(**enc).logits.float()).numpy())
    if not out:
        return np.zeros((0, model.config.num_labels), dtype=np.float32)
    return np.concatenate(out)
