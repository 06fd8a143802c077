"""A stand-in for `stance train` used by the job tests (no tests here).

Run as `python -m tests.support.fake_trainer train --config C --data D --no-promote`
(settings `jobs.train_module`). FAKE_TRAIN_MODE picks the behaviour:
ok (register a tiny bundle that says yes to everything), bad (one that says no to
everything), crash (log, then exit 3), hang (log progress and sleep until killed),
noresult (exit 0 without the JSON line), partial (leave a half-written bundle folder,
then die by SIGKILL), wait (as ok, once the file named by FAKE_TRAIN_RELEASE exists: the
test decides when training ends).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    mode = os.environ.get("FAKE_TRAIN_MODE", "ok")
    config = Path(argv[argv.index("--config") + 1])
    data = Path(argv[argv.index("--data") + 1])
    from training.settings import load_settings

    settings = load_settings(config)
    n = sum(1 for line in data.read_text().splitlines() if line.strip())
    print(f"fake training on {n} statements ({mode})", file=sys.stderr, flush=True)
    if mode == "crash":
        print("Traceback (most recent call last):\nRuntimeError: fake crash in training", file=sys.stderr)
        return 3
    if mode == "hang":
        from training.progress import Plan

        plan = Plan([("final model", 10**6), ("export and checks", 1)])  # writes STANCE_PROGRESS_FILE
        plan.start("final model")
        for i in range(10**6):
            print(f"\repoch 1: {i}it", end="", file=sys.stderr, flush=True)
            plan.step(1000)
            time.sleep(0.2)
    if mode == "wait":
        release = Path(os.environ["FAKE_TRAIN_RELEASE"])
        while not release.exists():
            time.sleep(0.1)
    if mode == "noresult":
        return 0
    from training.registry import Registry

    registry = Registry(settings.paths.models_dir)
    version = registry.new_version()
    if mode == "partial":
        tmp = settings.paths.models_dir / f".tmp-{version}-x"
        tmp.mkdir(parents=True)
        (tmp / "bundle.json").write_text("{}")
        os.kill(os.getpid(), signal.SIGKILL)
    from tests.support.admin import tiny_bundle

    path = tiny_bundle(settings.paths.models_dir, version, threshold=0.999 if mode == "bad" else 0.001)
    print(json.dumps({"version": version, "path": str(path), "metrics": {"fake": True}}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
