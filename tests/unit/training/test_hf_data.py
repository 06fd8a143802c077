"""HF `datasets` as the training data layer changes nothing the model sees: the batches
fed to the loss (tokens, masks, targets, their order) and the trained weights are identical
to the hand-built torch dataset it replaced; folds cut from the Dataset's columns are the
annotation folds; and the Dataset holds the annotations' texts, sources and targets."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tests.support import project_settings, seed_subset
from tests.support.tiny import make_tiny_base_model
from training.data import grouped_folds, texts_and_targets
from training.hf_data import annotation_dataset, dataset_folds, training_dataset
from training.hf_data import texts_and_targets as dataset_texts_and_targets


class _HandBuilt(torch.utils.data.Dataset):
    """The training dataset as it was before `datasets` (finetune._Encoded), kept as the reference."""

    def __init__(self, encodings: dict[str, list[Any]], targets: np.ndarray) -> None:
        self.encodings = encodings
        self.targets = targets

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = {k: v[i] for k, v in self.encodings.items()}
        item["labels"] = self.targets[i].astype(np.float32)
        return item


def _hand_built(texts, targets, tokenizer, max_length):
    return _HandBuilt(dict(tokenizer(list(texts), truncation=True, max_length=max_length)), targets)


def test_training_sees_the_same_batches_and_ends_with_the_same_weights(tmp_path, monkeypatch) -> None:
    import training.finetune as ft

    base = make_tiny_base_model(tmp_path / "base", layers=1)
    settings = project_settings().with_overrides(
        base_model={"path": str(base)}, training={"epochs": 2, "batch_size": 8, "average_last_epochs": 1}
    )
    texts, targets = texts_and_targets(seed_subset(6), settings.labels)
    batches: list[list[dict[str, torch.Tensor]]] = []
    real_loss = ft.WeightedBCETrainer.compute_loss

    def recording_loss(self, model, inputs, *args, **kwargs):
        batches[-1].append({k: v.detach().clone() for k, v in inputs.items()})
        return real_loss(self, model, inputs, *args, **kwargs)

    monkeypatch.setattr(ft.WeightedBCETrainer, "compute_loss", recording_loss)
    runs = []
    for build in (ft.training_dataset, _hand_built):  # datasets now, the hand-built dataset before
        monkeypatch.setattr(ft, "training_dataset", build)
        batches.append([])
        model, _ = ft.fine_tune(texts, targets, settings, seed=7, progress=False)
        runs.append(model.state_dict())

    now, before = batches
    assert len(now) == len(before) == 2 * -(-len(texts) // 8)  # every step of both epochs
    for a, b in zip(now, before):
        assert a.keys() == b.keys() == {"input_ids", "token_type_ids", "attention_mask", "labels"}
        for key in a:
            assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[1])


def test_distillation_targets_are_the_same_rows(tmp_path) -> None:
    from transformers import AutoTokenizer

    base = make_tiny_base_model(tmp_path / "base")
    tokenizer = AutoTokenizer.from_pretrained(base)
    texts, targets = texts_and_targets(seed_subset(3), project_settings().labels)
    soft = np.random.default_rng(0).random(targets.shape, dtype=np.float32)
    both = np.hstack([targets, soft])
    now, before = training_dataset(texts, both, tokenizer, 16), _hand_built(texts, both, tokenizer, 16)
    assert len(now) == len(before) == len(texts)
    for i in range(len(texts)):
        row, ref = now[i], before[i]
        assert row.keys() == ref.keys()
        assert all(row[k] == list(ref[k]) for k in ("input_ids", "token_type_ids", "attention_mask"))
        assert np.array_equal(np.asarray(row["labels"], dtype=np.float32), ref["labels"])
    assert max(len(ids) for ids in now["input_ids"]) == 16  # truncated to max_length, not padded


def test_annotation_dataset_and_its_folds() -> None:
    labels = project_settings().labels
    anns = seed_subset(12)
    ds = annotation_dataset(anns, labels)
    texts, y = dataset_texts_and_targets(ds)
    ref_texts, ref_y = texts_and_targets(anns, labels)
    assert texts == ref_texts and y.dtype == ref_y.dtype and np.array_equal(y, ref_y)
    assert ds["source"] == [a.source for a in anns]
    got, want = dataset_folds(ds, 4, seed=3), grouped_folds(anns, 4, seed=3, schema=labels)
    assert len(got) == len(want) == 4
    for g, w in zip(got, want):
        assert np.array_equal(g.train, w.train) and np.array_equal(g.valid, w.valid)
        assert not {ds["source"][i] for i in g.train} & {ds["source"][i] for i in g.valid}  # whole documents
