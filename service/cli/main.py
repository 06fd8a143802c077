"""The `stance` entry point: training's commands (segment, train, evaluate) beside the
service's own (serve, score, annotations, models, jobs, feeds, bench). The CLI sits on top of both
halves, so training never imports the service."""

from __future__ import annotations

from service.cli import annotations as annotations_cli
from service.cli import feeds as feeds_cli
from service.cli import jobs as jobs_cli
from service.cli import models as models_cli
from service.cli import serve as serve_cli
from service.settings import load_service_settings
from training import cli as training_cli

# Training's commands read the whole config (service sections included) under `stance`.
app = training_cli.build_app(load_service_settings)
serve_cli.register(app)
annotations_cli.register(app)
models_cli.register(app)
jobs_cli.register(app)
feeds_cli.register(app)

if __name__ == "__main__":
    app()
