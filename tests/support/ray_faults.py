"""An actor for the Ray engine's fault test: it kills its own process on its first batch,
once per run (a marker file, named by STANCE_TEST_DIE_MARKER, says it has died already)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from service.scoring.ray_engine import RayScorer

MARKER_ENV = "STANCE_TEST_DIE_MARKER"


class DiesOnce(RayScorer):
    def __call__(self, batch: Any) -> Any:
        marker = Path(os.environ[MARKER_ENV])
        try:
            marker.open("x").close()  # exclusive create: only the first caller of all actors dies
        except FileExistsError:
            return super().__call__(batch)
        os._exit(1)  # the worker process dies mid-run, no exception, no cleanup
