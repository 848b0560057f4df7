"""The one trainer and evaluator: schedule, precision, selection, checkpoints, bad input."""

from __future__ import annotations

import math

import pytest
import torch

from bimors.core.errors import CheckpointError
from bimors.data.images import ImageDataset
from bimors.data.synthetic import SyntheticScenes
from bimors.data.transforms import build_transform
from bimors.engine.checkpoint import load_into, read_checkpoint, save_checkpoint
from bimors.engine.data import TaskData
from bimors.engine.evaluator import evaluate
from bimors.engine.schedule import lr_at_epoch
from bimors.engine.trainer import NonFiniteLossError, Trainer
from bimors.methods import build_method
from bimors.protocols.base2new import base2new_tasks
from bimors.run.config import TrainConfig


def test_schedule_matches_dassl_constant_warmup_cosine():
    """Emulate Dassl: ConstantWarmupScheduler wrapping CosineAnnealingLR, stepped per epoch."""
    lr, epochs, warm, cons = 0.009, 10, 1, 1e-5
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    seen = []
    for epoch in range(epochs):
        seen.append(cons if epoch < warm else opt.param_groups[0]["lr"])
        if epoch >= warm:
            opt.step()
            cosine.step()
    ours = [lr_at_epoch(e, lr, epochs, warm, cons) for e in range(epochs)]
    assert ours == pytest.approx(seen, rel=1e-12)
    assert ours[0] == cons and ours[1] == lr
    assert lr_at_epoch(0, 0.1, 5) == 0.1


def _tasks(scenes, backbone, shots=4, captions=False):
    ds = SyntheticScenes(scenes)
    t = base2new_tasks(ds.split(), shots, 1, "synthetic")

    def data(task, train):
        images = ImageDataset(scenes, task.samples, build_transform(backbone.preprocess, train))
        caps = torch.randn(
            len(task.samples), 8, generator=torch.Generator().manual_seed(len(task.samples))
        )
        return TaskData(images, ds.prompt_names(task.classnames), caps if captions else None)

    return data(t.train, True), data(t.val, False), data(t.test_base, False)


@pytest.mark.parametrize("name", ["coop", "bimors"])
def test_training_lowers_the_loss_and_never_changes_clip(scenes, hf_backbone, name):
    train, val, _ = _tasks(scenes, hf_backbone, captions=name == "bimors")
    torch.manual_seed(1)  # CoOp's random context init draws from the global RNG
    method = build_method(name, hf_backbone, train.classnames, caption_dim=8)
    before = {k: v.clone() for k, v in hf_backbone.state_dict().items()}
    cfg = TrainConfig(epochs=8, batch_size=4, lr=0.02, warmup_epochs=0)
    result = Trainer(method, cfg).fit(train, val)
    losses = [h["loss"] for h in result.history]
    assert sum(losses[-2:]) / 2 < losses[0]
    assert all(torch.equal(before[k], v) for k, v in hf_backbone.state_dict().items())
    assert result.selection == "last" and result.selected_epoch == 8


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_autocast_keeps_trainable_weights_and_momentum_float32(scenes, hf_backbone, precision):
    train, _, _ = _tasks(scenes, hf_backbone, shots=2)
    method = build_method("cocoop", hf_backbone, train.classnames)
    before = method.ctx.detach().clone()
    cfg = TrainConfig(epochs=4, batch_size=2, precision=precision, warmup_epochs=0)
    trainer = Trainer(method, cfg)
    assert trainer.scaler.is_enabled() == (precision == "fp16")
    trainer.fit(train)
    assert not torch.equal(method.ctx, before) and torch.isfinite(method.ctx).all()
    assert all(p.dtype == torch.float32 for p in method.trainable_parameters())
    states = [trainer.optimizer.state[p]["momentum_buffer"] for p in method.trainable_parameters()]
    assert states and all(s.dtype == torch.float32 for s in states)


def test_selection_on_val_restores_the_best_epoch(scenes, hf_backbone, tmp_path):
    train, val, _ = _tasks(scenes, hf_backbone)
    method = build_method("coop", hf_backbone, train.classnames)
    cfg = TrainConfig(epochs=3, batch_size=4, selection="val", warmup_epochs=0)
    result = Trainer(method, cfg, out_dir=tmp_path).fit(train, val)
    accs = [h["val_acc"] for h in result.history]
    assert result.selected_epoch == 1 + accs.index(max(accs))
    assert evaluate(method, val).accuracy == pytest.approx(max(accs))
    assert read_checkpoint(tmp_path / "checkpoint.pt")["selected_epoch"] == result.selected_epoch
    # TensorBoard shows the validation accuracy of every epoch, as metrics.jsonl does
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    logged = [(e.step, e.value) for e in events.Scalars("val_acc")]
    assert logged == [(i + 1, pytest.approx(a)) for i, a in enumerate(accs)]


def test_evaluator_counts_every_image_in_a_confusion_matrix(scenes, hf_backbone):
    _, _, test = _tasks(scenes, hf_backbone)
    method = build_method("zeroshot", hf_backbone, test.classnames)
    ev = evaluate(method, test)
    labels = [s.label for s in test.images.samples]
    n = len(test.classnames)
    assert len(ev.confusion) == n and all(len(row) == n for row in ev.confusion)
    # rows are true classes: each row holds exactly the test images of that class
    assert [sum(row) for row in ev.confusion] == [labels.count(c) for c in range(n)]
    assert sum(ev.confusion[c][c] for c in range(n)) == ev.correct
    expected = [100.0 * ev.confusion[c][c] / labels.count(c) for c in range(n)]
    assert ev.per_class == pytest.approx(expected)


def test_nonfinite_loss_stops_naming_the_step_or_is_skipped(scenes, hf_backbone, monkeypatch):
    train, _, _ = _tasks(scenes, hf_backbone, shots=2)
    method = build_method("coop", hf_backbone, train.classnames)
    calls = {"n": 0}
    real_loss = method.loss

    def flaky(logits, labels):
        calls["n"] += 1
        loss = real_loss(logits, labels)
        return loss * float("nan") if calls["n"] == 2 else loss

    monkeypatch.setattr(method, "loss", flaky)
    with pytest.raises(NonFiniteLossError, match="epoch 1, step 2"):
        Trainer(method, TrainConfig(epochs=1, batch_size=2, warmup_epochs=0)).fit(train)
    calls["n"] = 0
    ctx = method.ctx.detach().clone()
    result = Trainer(
        method, TrainConfig(epochs=1, batch_size=2, warmup_epochs=0, nonfinite="skip")
    ).fit(train)
    assert result.skipped_steps == 1 and not torch.isnan(method.ctx).any()
    assert not torch.equal(method.ctx, ctx)


def test_checkpoint_round_trip_is_exact_and_strict(scenes, hf_backbone, tmp_path):
    train, _, test = _tasks(scenes, hf_backbone, shots=2, captions=True)
    method = build_method("bimors", hf_backbone, train.classnames, caption_dim=8)
    Trainer(method, TrainConfig(epochs=1, batch_size=2, warmup_epochs=0)).fit(train)
    path = save_checkpoint(tmp_path / "ck.pt", method, {"method": {"name": "bimors"}}, epoch=1)
    fresh = build_method("bimors", hf_backbone, train.classnames, caption_dim=8)
    payload = read_checkpoint(path)
    assert set(payload["state"]) == {n for n, p in method.named_parameters() if p.requires_grad}
    load_into(fresh, payload, str(path))
    a, b = evaluate(method, test), evaluate(fresh, test)
    assert a.per_class == b.per_class
    other = build_method("cocoop", hf_backbone, train.classnames)
    with pytest.raises(CheckpointError, match="holds method 'bimors', not 'cocoop'"):
        load_into(other, payload)
    wrong_width = build_method("bimors", hf_backbone, train.classnames, caption_dim=16)
    with pytest.raises(CheckpointError, match=r"caption_proj.weight: \(64, 8\) in .*, \(64, 16\)"):
        load_into(wrong_width, payload, str(path))


def test_truncated_checkpoint_is_refused(tmp_path, hf_backbone):
    method = build_method("coop", hf_backbone, ["a", "b"])
    path = save_checkpoint(tmp_path / "ck.pt", method, {})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        read_checkpoint(path)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_evaluator_counts_per_class(scenes, hf_backbone):
    _, _, test = _tasks(scenes, hf_backbone)
    method = build_method("zeroshot", hf_backbone, test.classnames)
    result = evaluate(method, test, batch_size=5)
    assert result.total == len(test)
    assert result.correct == round(result.accuracy * result.total / 100)
    assert len(result.per_class) == 3 and not any(math.isnan(x) for x in result.per_class)
