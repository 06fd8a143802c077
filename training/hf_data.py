"""HF `datasets` as training's data layer: annotations -> `Dataset`, tokenised with `map`.

`annotation_dataset` holds one row per statement (`text`, `source`, `labels` multi-hot);
`dataset_folds` cuts grouped folds from its columns by the one fold rule
(`training.data.folds_from_columns`), so whole source documents stay on one side; and
`training_dataset` is what the Trainer iterates: the statements tokenised by
`Dataset.map(batched=True)` (no padding: the collator pads per batch) with float targets.
The tokens, targets and their order are the ones the hand-built torch dataset gave
(tests/unit/training/test_hf_data.py checks the batches fed to the loss are identical).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from datasets import Dataset, Features, Value
from datasets import Sequence as SequenceFeature

from training.annotations import Annotation
from training.data import Fold, folds_from_columns
from training.labels import encode

TEXT, SOURCE, LABELS = "text", "source", "labels"


def annotation_dataset(annotations: Sequence[Annotation], schema: Sequence[str]) -> Dataset:
    """One row per annotation: `text`, `source` (the document, the grouping key) and
    `labels` (multi-hot float32 in `schema`'s order)."""
    features = Features(
        {TEXT: Value("string"), SOURCE: Value("string"), LABELS: SequenceFeature(Value("float32"), length=len(schema))}
    )
    return Dataset.from_dict(
        {
            TEXT: [a.text for a in annotations],
            SOURCE: [a.source for a in annotations],
            LABELS: encode([a.labels for a in annotations], schema).tolist(),
        },
        features=features,
    )


def texts_and_targets(dataset: Dataset) -> tuple[list[str], np.ndarray]:
    """The statements and their (n, labels) float32 targets, in row order."""
    return list(dataset[TEXT]), np.asarray(dataset[LABELS], dtype=np.float32).reshape(len(dataset), -1)


def dataset_folds(dataset: Dataset, n_folds: int, seed: int) -> list[Fold]:
    """Grouped k folds by source document, from the dataset's columns."""
    _, y = texts_and_targets(dataset)
    return folds_from_columns(dataset[SOURCE], y, n_folds, seed)


def training_dataset(texts: Sequence[str], targets: np.ndarray, tokenizer: Any, max_length: int) -> Dataset:
    """What the Trainer iterates: `input_ids`, `token_type_ids`, `attention_mask` (truncated
    to `max_length`, unpadded) and `labels` (float32 targets), one row per statement."""
    targets = np.asarray(targets, dtype=np.float32)
    raw = Dataset.from_dict(
        {TEXT: list(texts), LABELS: targets.tolist()},
        features=Features({TEXT: Value("string"), LABELS: SequenceFeature(Value("float32"))}),
    )
    return raw.map(
        lambda batch: tokenizer(batch[TEXT], truncation=True, max_length=max_length),
        batched=True,
        remove_columns=[TEXT],
        load_from_cache_file=False,  # in memory, nothing written to the HF cache
        keep_in_memory=True,
        desc=None,
    )


def snapshot_dataset(annotations: Sequence[Annotation]) -> Dataset:
    """An annotation snapshot in the project's record shape (`text`, `labels` as names,
    `source`), the shape Argilla and the HF hub's text-classification sets import."""
    features = Features({TEXT: Value("string"), LABELS: SequenceFeature(Value("string")), SOURCE: Value("string")})
    return Dataset.from_list([a.to_json() for a in annotations], features=features)


def write_snapshot(annotations: Sequence[Annotation], path: Path, fmt: Literal["parquet", "hf"]) -> int:
    """Write the snapshot as one Parquet file or a `save_to_disk` folder (reload it with
    `datasets.load_from_disk`); returns the number of records."""
    dataset = snapshot_dataset(annotations)
    if fmt == "parquet":
        dataset.to_parquet(str(path))
    else:
        dataset.save_to_disk(str(path))
    return len(dataset)
