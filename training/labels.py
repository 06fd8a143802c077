"""The label schema: names, order, and the multi-hot encoding every other module uses.

The names come from `configs/default.yaml` (`Settings.labels`; their meaning from
ANNOTATION_GUIDE.md) and are passed in as `schema`: nothing here reads the configuration.
A bundle records the labels it was trained with, so scoring never depends on the config.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

NONE = "none"


class UnknownLabelError(ValueError):
    pass


def check_labels(labels: Iterable[str], schema: Sequence[str]) -> list[str]:
    """Validated, de-duplicated labels in schema order. `none` is not a label: it is []."""
    given = list(labels)
    unknown = [x for x in given if x not in schema]
    if unknown:
        raise UnknownLabelError(f"unknown label(s) {unknown}; allowed: {list(schema)} (use [] for none)")
    return [x for x in schema if x in given]


def encode(label_lists: Sequence[Sequence[str]], schema: Sequence[str]) -> np.ndarray:
    """Multi-hot matrix (n, len(schema)) of float32."""
    index = {name: i for i, name in enumerate(schema)}
    out = np.zeros((len(label_lists), len(schema)), dtype=np.float32)
    for row, labels in enumerate(label_lists):
        for name in labels:
            out[row, index[name]] = 1.0
    return out
