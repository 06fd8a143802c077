"""The service's settings: the same file, every section validated, a training Settings too."""

from __future__ import annotations

import pytest

from service.settings import Settings, load_service_settings
from tests.support import PROJECT
from training.settings import Settings as TrainingSettings
from training.settings import SettingsError


def test_service_settings_extend_training_and_read_the_same_file():
    settings = load_service_settings(root=PROJECT)
    assert isinstance(settings, Settings) and isinstance(settings, TrainingSettings)
    assert settings.jobs.train_module == "training.cli"
    assert settings.store_url().endswith("data/annotations.db")
    assert type(settings.with_overrides(service={"port": 8001})) is Settings


def test_an_unknown_section_or_field_is_an_error_for_the_service(tmp_path):
    typo = tmp_path / "typo.yaml"
    typo.write_text("servce:\n  port: 1\n")
    with pytest.raises(SettingsError, match="servce"):
        load_service_settings(typo, root=PROJECT)
    field = tmp_path / "field.yaml"
    field.write_text("jobs:\n  train_modul: x\n")
    with pytest.raises(SettingsError, match="jobs.train_modul"):
        load_service_settings(field, root=PROJECT)
