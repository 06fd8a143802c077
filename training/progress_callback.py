"""The Trainer's side of run progress: apart from training/progress.py so that reading a
progress file (the service does, for every job it shows) never imports transformers/torch."""

from __future__ import annotations

from transformers import TrainerCallback

from training.progress import Plan


class StepCallback(TrainerCallback):
    """Counts the Trainer's optimizer steps into a `Plan`."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    def on_step_end(self, args, state, control, **kwargs):  # type: ignore[override]
        self.plan.step()
