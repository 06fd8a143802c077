"""Sentence embeddings: the encoder's masked mean of token vectors, L2-normalised.

Used for diversity in active learning (which statements are near-duplicates of each
other) and by the active-learning simulation's stand-in learner. Works on a bundle's
fine-tuned model folder (the classifier's encoder, head ignored) or on a plain encoder
folder such as the base MiniLM. Separate from scoring: the ONNX/torch backends that
score are untouched.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np


class Embedder:
    """Loads the encoder of `model_dir` once (torch, fp32) and embeds batches of texts."""

    def __init__(
        self, model_dir: Path, max_length: int = 128, batch_size: int = 32, threads: int | None = None
    ) -> None:
        import torch
        from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer

        import training.modeling  # noqa: F401  (registers the bundle's model type)
        from training.modeling import MODEL_TYPE

        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
        if (
            config.model_type == MODEL_TYPE
            or getattr(config, "architectures", None)
            and any(a.endswith("ForSequenceClassification") for a in config.architectures)
        ):
            model = AutoModelForSequenceClassification.from_pretrained(model_dir, local_files_only=True)
            self.encoder = model.base_model.eval()
        else:
            self.encoder = AutoModel.from_pretrained(model_dir, local_files_only=True, add_pooling_layer=False).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.max_length = max_length
        self.batch_size = batch_size
        self._lock = threading.Lock()  # one tokenizer, one model: callers may be on several threads

    @property
    def dim(self) -> int:
        return int(self.encoder.config.hidden_size)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), hidden) float32, unit length rows, in input order."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        torch = self._torch
        with self._lock, torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = list(texts[start : start + self.batch_size])
                enc = self.tokenizer(
                    batch, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
                )
                hidden = self.encoder(
                    input_ids=enc["input_ids"],
                    attention_mask=enc["attention_mask"],
                    token_type_ids=enc.get("token_type_ids"),
                ).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
                out[start : start + len(batch)] = pooled.float().numpy()
        return out
