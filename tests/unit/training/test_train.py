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
        trainer = types.SimpleNamespace(
            pos_weight=pos_weight, distill_weight=weight, label_smoothing=0.0, rdrop_alpha=0.0
        )
        trainer._supervised = lambda lg, t, tr=trainer: WeightedBCETrainer._supervised(tr, lg, t)
        labels = torch.hstack([gold, soft]) if weight else gold
        loss = WeightedBCETrainer.compute_loss(trainer, model, {"labels": labels})
        expected = (1 - weight) * bce(logits, gold, pos_weight=pos_weight) + weight * bce(logits, soft)
        assert torch.isclose(loss, expected)


def test_experiment_reports_grow_one_run_at_a_time(tmp_path):
    from training.experiments import SHIPPED, write_report

    def row(name, f1):
        return {
            "name": name,
            "description": name,
            "seconds": 1.0,
            "metrics": {"macro_f1": f1, "macro_f1_ci": [f1 - 0.05, f1 + 0.05], "micro_f1": f1, "micro_f1_ci": [0, 1]},
        }

    def run(*rows, n=100):
        return {
            "created": "now",
            "command": "stance experiments",
            "n_folds": 5,
            "n_statements": n,
            "variants": list(rows),
        }

    path = tmp_path / "experiments.json"
    write_report(run(row(SHIPPED, 0.70), row("a", 0.60)), path)
    merged = write_report(run(row("a", 0.65), row("b", 0.69)), path)  # re-runs a, adds b
    assert [(r["name"], r["metrics"]["macro_f1"]) for r in merged["variants"]] == [
        (SHIPPED, 0.70),
        ("a", 0.65),
        ("b", 0.69),
    ]
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
    model = MeanPoolBertForSequenceClassification.from_pretrained(
        base, config=classifier_config(base, "mean", num_labels=4)
    )
    before = [layer.state_dict() for layer in model.bert.encoder.layer]
    _keep_encoder_layers(model, [0, 2])
    assert model.config.num_hidden_layers == 2 == len(model.bert.encoder.layer)
    for kept, original in zip(model.bert.encoder.layer, (before[0], before[2])):
        assert all(torch.equal(kept.state_dict()[k], v) for k, v in original.items())
    assert model(input_ids=torch.tensor([[101, 2000, 102]])).logits.shape == (1, 4)


def tiny_classifier(layers: int = 3):
    """A 3-layer random mean-pooling classifier (no weights loaded)."""
    from training.modeling import MeanPoolBertConfig, MeanPoolBertForSequenceClassification

    config = MeanPoolBertConfig(
        vocab_size=100,
        hidden_size=16,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        num_labels=4,
    )
    return MeanPoolBertForSequenceClassification(config)


def test_label_smoothing_pulls_gold_targets_toward_half():
    import types

    import torch

    from training.finetune import WeightedBCETrainer

    logits = torch.tensor([[3.0, -2.0]])
    gold = torch.tensor([[1.0, 0.0]])
    trainer = types.SimpleNamespace(pos_weight=torch.ones(2), distill_weight=0.0, label_smoothing=0.2)
    loss = WeightedBCETrainer._supervised(trainer, logits, gold)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.tensor([[0.9, 0.1]]))
    assert torch.isclose(loss, expected)


def test_rdrop_divergence_is_zero_for_equal_passes_and_positive_otherwise():
    import torch

    from training.finetune import bernoulli_sym_kl

    a = torch.tensor([[1.0, -2.0, 0.3]])
    assert torch.isclose(bernoulli_sym_kl(a, a.clone()), torch.tensor(0.0), atol=1e-7)
    assert bernoulli_sym_kl(a, a + torch.tensor([[0.5, 1.0, -1.0]])) > 0.01


def test_layerwise_decay_gives_lower_layers_smaller_learning_rates():
    from training.finetune import layerwise_groups

    model = tiny_classifier()
    groups = layerwise_groups(model, lr=1e-3, decay=0.5, weight_decay=0.01)
    rate = {id(p): g["lr"] for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    depth = model.config.num_hidden_layers
    head = [n for n in named if n.startswith("classifier.")][0]
    top = [n for n in named if f".layer.{depth - 1}." in n][0]
    bottom = [n for n in named if ".layer.0." in n][0]
    emb = [n for n in named if ".embeddings." in n][0]
    assert rate[id(named[head])] == rate[id(named[top])] == 1e-3
    assert rate[id(named[bottom])] == 1e-3 * 0.5 ** (depth - 1)
    assert rate[id(named[emb])] == 1e-3 * 0.5**depth
    assert sum(len(g["params"]) for g in groups) == len([p for p in model.parameters() if p.requires_grad])


def test_epoch_average_is_the_mean_of_the_last_epochs_weights():
    import types

    import torch

    from training.finetune import EpochAverage

    model = tiny_classifier()
    avg = EpochAverage(k=2, epochs=3)
    w = model.classifier.weight
    seen = []
    for epoch in (1, 2, 3):
        with torch.no_grad():
            w.fill_(float(epoch))
        seen.append(float(epoch))
        avg.on_epoch_end(None, types.SimpleNamespace(epoch=float(epoch)), None, model=model)
    avg.apply(model)
    assert torch.allclose(model.classifier.weight, torch.full_like(w, 2.5))  # epochs 2 and 3 only


def test_policy_choice_prefers_fewer_false_stances_among_near_best():
    from training.policy import choose_policy

    table = {
        "tuned": {"macro_f1": 0.75, "article_none_false_stance_rate": 0.13, "none_false_stance_rate": 0.30},
        "calibrated": {"macro_f1": 0.74, "article_none_false_stance_rate": 0.03, "none_false_stance_rate": 0.19},
        "fixed": {"macro_f1": 0.70, "article_none_false_stance_rate": 0.01, "none_false_stance_rate": 0.10},
    }
    assert choose_policy(table, within=0.015)[0] == "calibrated"  # fixed is too far below the best
    assert choose_policy(table, within=0.0)[0] == "tuned"


def test_policies_calibrate_scores_and_keep_decisions_consistent():
    import numpy as np

    from training.policy import cross_fit, fit_policy
    from training.settings import ThresholdSettings

    rng = np.random.default_rng(0)
    y = (rng.random((400, 2)) < 0.3).astype(int)
    raw = np.clip(0.35 + 0.4 * y + 0.2 * rng.standard_normal(y.shape), 0.01, 0.99).astype(np.float32)  # over-confident
    cfg = ThresholdSettings()
    labels = ("a", "b")
    fixed = fit_policy("fixed", y, raw, labels, cfg)
    assert (fixed.decide(raw) == (raw >= 0.5)).all()  # a raw 0.5 cut, expressed on the calibrated scale
    calibrated = fit_policy("calibrated", y, raw, labels, cfg)
    scores = calibrated.scores(raw)
    assert abs(scores[:, 0].mean() - y[:, 0].mean()) < 0.02  # calibrated: mean score ~ base rate
    assert (np.argsort(scores[:, 0], kind="stable") == np.argsort(raw[:, 0], kind="stable")).all()  # monotone
    fold_of = np.arange(400) % 4
    _, preds = cross_fit("tuned", y, raw, fold_of, labels, cfg)
    assert preds.shape == y.shape and set(np.unique(preds)) <= {0, 1}
