"""Training pieces in process on a tiny encoder: distillation, the experiments report,
student layers. (The CLI and the real base model: tests/e2e/test_train_cli.py.)"""

from tests.support import project_settings, seed_subset
from tests.support.tiny import make_tiny_base_model

QUICK = {"epochs": 1, "n_folds": 2, "batch_size": 16}


def test_distillation_trains_a_shallower_student_on_the_teachers_probabilities(tmp_path, monkeypatch):
    import training.finetune as ft
    from training.data import texts_and_targets

    base = make_tiny_base_model(tmp_path / "base", layers=2)
    settings = project_settings().with_overrides(
        base_model={"path": str(base)}, training=QUICK | {"distill_layers": 1, "distill_weight": 0.3}
    )
    texts, targets = texts_and_targets(seed_subset(12), settings.labels)
    calls, real = [], ft.fine_tune

    def spy(texts_, targets_, settings_, **kwargs):
        model, tok = real(texts_, targets_, settings_, **kwargs)
        calls.append((settings_, kwargs, model.config.num_hidden_layers))
        return model, tok

    monkeypatch.setattr(ft, "fine_tune", spy)
    student, _ = ft.fit_recipe(texts, targets, settings, seed=3)
    (t_settings, t_kwargs, t_depth), (s_settings, s_kwargs, s_depth) = calls
    assert t_depth == 2 and "teacher_probs" not in t_kwargs  # the teacher: full depth, gold only
    assert s_depth == 1 == student.config.num_hidden_layers  # the student ships
    assert s_kwargs["teacher_probs"].shape == targets.shape and s_kwargs["distill_weight"] == 0.3
    assert s_settings.base_model.path != str(base)  # initialised from the teacher's weights


def test_distillation_loss_mixes_gold_and_teacher_targets():
    import types

    import torch

    from training.finetune import WeightedBCETrainer

    logits = torch.tensor([[2.0, -1.0], [0.5, 0.0]])
    gold, soft = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[0.9, 0.2], [0.3, 0.6]])
    pos_weight = torch.tensor([2.0, 3.0])
    model = lambda **_: types.SimpleNamespace(logits=logits)  # noqa: E731
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    for weight in (0.0, 0.4):
        trainer = types.SimpleNamespace(pos_weight=pos_weight, distill_weight=weight)
        labels = torch.hstack([gold, soft]) if weight else gold
        loss = WeightedBCETrainer.compute_loss(trainer, model, {"labels": labels})
        expected = (1 - weight) * bce(logits, gold, pos_weight=pos_weight) + weight * bce(logits, soft)
        assert torch.isclose(loss, expected)


def test_experiment_reports_grow_one_run_at_a_time(tmp_path):
    from training.experiments import SHIPPED, write_report

    def row(name, f1):
        return {"name": name, "description": name, "seconds": 1.0,
                "metrics": {"macro_f1": f1, "macro_f1_ci": [f1 - 0.05, f1 + 0.05], "micro_f1": f1, "micro_f1_ci": [0, 1]}}

    def run(*rows, n=100):
        return {"created": "now", "command": "stance experiments", "n_folds": 5, "n_statements": n, "variants": list(rows)}

    path = tmp_path / "experiments.json"
    write_report(run(row(SHIPPED, 0.70), row("a", 0.60)), path)
    merged = write_report(run(row("a", 0.65), row("b", 0.69)), path)  # re-runs a, adds b
    assert [(r["name"], r["metrics"]["macro_f1"]) for r in merged["variants"]] == [(SHIPPED, 0.70), ("a", 0.65), ("b", 0.69)]
    assert [r["kept"] for r in merged["variants"]] == [True, False, False]
    assert "`b` -0.010" in merged["conclusion"] and "inside" in merged["conclusion"]
    other_data = write_report(run(row("c", 0.5), n=101), path)  # other data: nothing to compare with
    assert [r["name"] for r in other_data["variants"]] == ["c"]


def test_students_keep_the_chosen_teacher_layers(tmp_path):
    import torch

    from training.finetune import _keep_encoder_layers, student_layers
    from training.modeling import MeanPoolBertForSequenceClassification, classifier_config

    assert student_layers(6, 3, "first") == [0, 1, 2]
    assert student_layers(6, 3, "spread") == [0, 2, 5]  # the last layer feeds the head
    assert student_layers(6, 2, "spread") == [0, 5] and student_layers(2, 4, "spread") == [0, 1]
    base = make_tiny_base_model(tmp_path / "base", layers=3)
    model = MeanPoolBertForSequenceClassification.from_pretrained(base, config=classifier_config(base, "mean", num_labels=4))
    before = [layer.state_dict() for layer in model.bert.encoder.layer]
    _keep_encoder_layers(model, [0, 2])
    assert model.config.num_hidden_layers == 2 == len(model.bert.encoder.layer)
    for kept, original in zip(model.bert.encoder.layer, (before[0], before[2])):
        assert all(torch.equal(kept.state_dict()[k], v) for k, v in original.items())
    assert model(input_ids=torch.tensor([[101, 2000, 102]])).logits.shape == (1, 4)
