"""The classifier architecture: BERT encoder + masked mean pooling + linear head.

all-MiniLM-L6-v2 was trained as a sentence encoder with mean pooling; its [CLS] vector
was never trained for sentence meaning, so Hugging Face's stock
`BertForSequenceClassification` (CLS pooler) starts from a weak representation. This
class keeps the stock interface (config, safetensors, `.logits`) and is registered with
the Auto classes, so `AutoModelForSequenceClassification.from_pretrained(bundle/model)`
and `transformers.pipeline` load it once this module is imported.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    BertConfig,
    BertModel,
    BertPreTrainedModel,
)
from transformers.modeling_outputs import SequenceClassifierOutput

MODEL_TYPE = "stance-meanpool-bert"

# A custom head has no tensor-parallel plan; transformers warns about it on every load.
logging.getLogger("transformers.distributed.tensor_parallel").setLevel(logging.ERROR)


class MeanPoolBertConfig(BertConfig):
    model_type = MODEL_TYPE


class MeanPoolBertForSequenceClassification(BertPreTrainedModel):
    config_class = MeanPoolBertConfig

    def __init__(self, config: MeanPoolBertConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(config.classifier_dropout or config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> SequenceClassifierOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        logits = self.classifier(self.dropout(pooled))
        loss = None
        if labels is not None:
            loss = nn.functional.binary_cross_entropy_with_logits(logits.float(), labels.float())
        return SequenceClassifierOutput(loss=loss, logits=logits)


AutoConfig.register(MODEL_TYPE, MeanPoolBertConfig)
AutoModelForSequenceClassification.register(MeanPoolBertConfig, MeanPoolBertForSequenceClassification)


def classifier_class(pooling: str) -> type:
    """'mean' -> this module's class; 'cls' -> the stock BertForSequenceClassification."""
    if pooling == "mean":
        return MeanPoolBertForSequenceClassification
    from transformers import BertForSequenceClassification

    return BertForSequenceClassification


def classifier_config(base_dir: Any, pooling: str, **kwargs: Any) -> BertConfig:
    """The base encoder's config, as the config class of the chosen head."""
    base = BertConfig.from_pretrained(base_dir).to_dict()
    base.pop("model_type", None)
    base.pop("architectures", None)
    cls = MeanPoolBertConfig if pooling == "mean" else BertConfig
    return cls(**{**base, **kwargs})
