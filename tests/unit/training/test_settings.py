"""Settings: one layering rule, the project root from --root / STANCE_ROOT / the current
folder, and training's view that leaves the service's sections to the service."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import PROJECT
from training.settings import ROOT_ENV, Settings, SettingsError, layered_config, load_settings, read_config


def test_root_comes_from_the_argument_the_environment_or_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(ROOT_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SettingsError, match="no configs/default.yaml"):
        load_settings()
    assert load_settings(root=PROJECT).paths.models_dir == PROJECT / "models"
    monkeypatch.setenv(ROOT_ENV, str(PROJECT))
    settings = load_settings()
    assert settings.root == PROJECT and settings.paths.annotations_dir == PROJECT / "seeds" / "annotations"


def test_an_override_file_is_layered_and_its_relative_paths_hang_off_the_root(tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text("training:\n  epochs: 1\npaths:\n  models_dir: elsewhere/models\n")
    settings = load_settings(extra, root=PROJECT)
    assert settings.training.epochs == 1 and settings.training.n_folds == load_settings(root=PROJECT).training.n_folds
    assert settings.paths.models_dir == PROJECT / "elsewhere" / "models"
    base = load_settings(root=PROJECT).model_dump(mode="json")
    assert layered_config(base, extra, PROJECT)["paths"]["models_dir"] == str(PROJECT / "elsewhere" / "models")
    assert read_config(extra, PROJECT)["training"] == {"epochs": 1}


def test_training_ignores_the_service_sections_and_never_dumps_the_root():
    settings = load_settings(root=PROJECT)
    assert type(settings) is Settings and not hasattr(settings, "jobs")
    assert "root" not in settings.model_dump()
    assert settings.with_overrides(training={"epochs": 2}).root == PROJECT


def test_a_bad_value_names_file_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("training:\n  epochs: -1\n")
    with pytest.raises(SettingsError, match=r"bad.yaml: training.epochs"):
        load_settings(bad, root=PROJECT)


def test_nothing_in_training_reads_the_config_on_import():
    sources = {p.name: p.read_text(encoding="utf-8") for p in (PROJECT / "training").glob("*.py")}
    assert not [name for name, text in sources.items() if "get_settings" in text]
    assert "LABELS" not in sources["labels.py"]
    assert not [name for name, text in sources.items() if "__file__" in text]


def test_unknown_root_is_reported_with_the_variable_to_set(tmp_path):
    with pytest.raises(SettingsError, match=ROOT_ENV):
        load_settings(root=Path(tmp_path))
