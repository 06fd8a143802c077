"""Same as `stance bench` (see service/bench/throughput.py): `python benchmarks/bench.py [--bundle PATH] ...`."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.cli.main import app  # noqa: E402

if __name__ == "__main__":
    app(["bench", *sys.argv[1:]])
