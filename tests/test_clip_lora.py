"""CLIP-LoRA: the official LoRA maths on both adapters, cache refusal, checkpoints, CLI runs.

The official layer (MaxZanella/CLIP-LoRA ``loralib/layers.py`` ``LinearLoRA``)
restated: ``y = W x + b + (B A dropout(x)) * alpha / r`` on each of q, k and v
of every block of both encoders, ``A`` Kaiming-uniform, ``B`` zero.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from bimors.cli import main
from bimors.methods import build_method
from bimors.methods.clip_lora import _lora_update
from bimors.methods.template import template_prompts
from tests.test_experiments import _records, _train, env  # noqa: F401

CLASSNAMES = ["forest", "river", "harbor"]


def _pixels(n=4, seed=0):
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _randomise(method, seed=0):
    """Random B (the official init leaves it zero, which would hide the update)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in method.own_parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)


def _merged_reference(method, backbone):
    """The official layer in eval mode is W + (alpha / r) B A: fold it into a backbone copy."""
    ref = copy.deepcopy(backbone)
    scale = method.cfg.alpha / method.cfg.rank
    towers = {"text": ref.text_tower, "vision": ref.vision_tower}
    with torch.no_grad():
        for enc, layers in method.lora.items():
            for plain, block in zip(towers[enc].blocks, layers, strict=True):
                deltas = []
                for p in ("q", "k", "v"):
                    lin = getattr(block, f"{p}_proj")
                    a, b = lin.lora_A["default"].weight, lin.lora_B["default"].weight
                    deltas.append(scale * b @ a)
                if len(plain.qkv) == 1:  # open_clip: packed [q; k; v]
                    plain.qkv[0][0].add_(torch.cat(deltas))
                else:
                    for (w, _), d in zip(plain.qkv, deltas, strict=True):
                        w.add_(d)
    return ref


def _reference_logits(ref, method, pixels):
    image = F.normalize(ref.encode_image(pixels).pooled.float(), dim=-1)
    text = template_prompts(ref, method.cfg.template, method.classnames).encode(ref, None)
    return ref.logit_scale * image @ text.float().t()


def test_logits_equal_the_official_layer_folded_into_the_weights(backbone):
    m = build_method("clip_lora", backbone, CLASSNAMES)
    _randomise(m)
    m.eval()
    pixels = _pixels()
    with torch.no_grad():
        ours = m(m.image_features(pixels))
        ref = _reference_logits(_merged_reference(m, backbone), m, pixels)
        plain = _reference_logits(backbone, m, pixels)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(ours, plain, atol=1e-3)  # the update is really applied
    # ...and the backbone is left untouched after the method ran
    assert all(b.qkv_delta is None for b in backbone.text_tower.blocks)


def test_zero_init_starts_at_zero_shot_clip(backbone):
    m = build_method("clip_lora", backbone, CLASSNAMES).eval()
    zs = build_method("zeroshot", backbone, CLASSNAMES).eval()
    pixels = _pixels()
    with torch.no_grad():
        torch.testing.assert_close(
            m(m.image_features(pixels)), zs(zs.image_features(pixels)), rtol=1e-4, atol=1e-4
        )


def test_update_with_dropout_is_the_official_formula(hf_backbone):
    m = build_method("clip_lora", hf_backbone, CLASSNAMES)
    _randomise(m)
    m.train()
    layer = m.lora["text"][0].q_proj
    h = torch.randn(2, 5, hf_backbone.text_width)
    torch.manual_seed(3)
    ours = _lora_update(layer, h)
    torch.manual_seed(3)
    a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    ref = (F.dropout(h, 0.25, training=True) @ a.t() @ b.t()) * (1.0 / 2)
    torch.testing.assert_close(ours, ref)


def _tensor(out):
    """transformers 5 returns an output object from get_*_features, 4.x a tensor."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def test_loss_and_grads_equal_the_library_forward_with_official_layers(hf_backbone):
    """HF's own CLIPModel forward with q/k/v replaced by the restated official layer."""
    m = build_method("clip_lora", hf_backbone, CLASSNAMES)
    _randomise(m)
    m.eval()  # dropout off: same maths, no mask to match
    pixels, labels = _pixels(), torch.tensor([0, 1, 2, 0])
    loss = m.loss(m(m.image_features(pixels)), labels)
    loss.backward()
    ours = {n: p.grad.clone() for n, p in m.own_parameters()}

    model = copy.deepcopy(hf_backbone.model)
    scale = m.cfg.alpha / m.cfg.rank
    ref_params = {}

    class OfficialLoRA(torch.nn.Module):
        def __init__(self, base, a, b, key):
            super().__init__()
            self.base = base
            self.a = torch.nn.Parameter(a.detach().clone())
            self.b = torch.nn.Parameter(b.detach().clone())
            ref_params[key + ".lora_A.default.weight"] = self.a
            ref_params[key + ".lora_B.default.weight"] = self.b

        def forward(self, x):
            return self.base(x) + (x @ self.a.t() @ self.b.t()) * scale

    towers = {"text": model.text_model, "vision": model.vision_model}
    for enc, layers in m.lora.items():
        for i, (hf_layer, block) in enumerate(zip(towers[enc].encoder.layers, layers, strict=True)):
            for p in ("q", "k", "v"):
                lin = getattr(block, f"{p}_proj")
                setattr(
                    hf_layer.self_attn,
                    f"{p}_proj",
                    OfficialLoRA(
                        getattr(hf_layer.self_attn, f"{p}_proj"),
                        lin.lora_A["default"].weight,
                        lin.lora_B["default"].weight,
                        f"lora.{enc}.{i}.{p}_proj",
                    ),
                )
    texts = [m.cfg.template.format(c) for c in m.classnames]
    ids = hf_backbone.tokenizer(texts, padding=True, return_tensors="pt")
    text = F.normalize(_tensor(model.get_text_features(**ids)), dim=-1)
    image = F.normalize(_tensor(model.get_image_features(pixel_values=pixels)), dim=-1)
    ref_loss = F.cross_entropy(model.logit_scale.exp() * image @ text.t(), labels)
    ref_loss.backward()
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-5)
    assert set(ours) == set(ref_params)
    for name, grad in ours.items():
        torch.testing.assert_close(grad, ref_params[name].grad, rtol=1e-4, atol=1e-5)


def test_trainable_count_equals_the_official(backbone):
    """Official: r (d_in + d_out) per adapted Linear; 3 per block; every block of both towers."""
    m = build_method("clip_lora", backbone, CLASSNAMES)
    r = m.cfg.rank
    official = (
        3
        * r
        * 2
        * (
            backbone.text_width * backbone.text_depth
            + backbone.vision_width * backbone.vision_depth
        )
    )
    assert m.describe()["trainable_params"] == official
    assert sum(p.numel() for p in m.trainable_parameters()) == official
    assert not any(p.requires_grad for p in backbone.parameters())


def test_feature_cache_refuses_it(hf_backbone):
    from bimors.engine.features import CachedFeatures

    m = build_method("clip_lora", hf_backbone, CLASSNAMES)
    assert type(m).frozen_image_features is False
    assert m.image_features(_pixels(2)).pooled.requires_grad
    source = CachedFeatures(train_views=2, eval=True)
    assert not source.uses_cache(m, True) and not source.uses_cache(m, False)


def test_checkpoint_holds_only_lora_weights_and_reloads_strictly(hf_backbone):
    m = build_method("clip_lora", hf_backbone, CLASSNAMES)
    _randomise(m)
    state = m.method_state_dict()
    assert state and all(".lora_A." in k or ".lora_B." in k for k in state)
    assert not any(k.startswith("backbone.") for k in state)
    other = build_method("clip_lora", hf_backbone, CLASSNAMES)
    other.load_method_state_dict(state)
    pixels = _pixels()
    with torch.no_grad():
        torch.testing.assert_close(
            other.eval()(other.image_features(pixels)), m.eval()(m.image_features(pixels))
        )
    from bimors.core.errors import CheckpointError

    broken = dict(state)
    broken.pop(next(iter(broken)))
    with pytest.raises(CheckpointError, match="missing keys"):
        other.load_method_state_dict(broken)


def test_open_clip_packed_qkv_is_served(oc_backbone):
    m = build_method("clip_lora", oc_backbone, CLASSNAMES)
    assert set(m.lora) == {"text", "vision"}


def test_base_to_new_cli_runs_resumes_and_predicts(env, tmp_path):  # noqa: F811
    out = tmp_path / "lora"
    extra = ["--set", "method.name=clip_lora", "--set", "train.optimizer=adamw"]
    assert _train(env, out, method="clip_lora", extra=extra[2:]) == 0
    recs = _records(out)
    assert recs and all(r["method"] == "clip_lora" for r in recs)
    before = (out / "checkpoint.pt").stat().st_mtime_ns
    assert _train(env, out, method="clip_lora", extra=extra[2:]) == 0  # done: skipped
    assert (out / "checkpoint.pt").stat().st_mtime_ns == before
    payload = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert payload["state"] and all(".lora_" in k for k in payload["state"])
    assert main(["-q", "eval", str(out)]) == 0
    # predict rebuilds the adapted model: its scores equal the trained method's own
    from PIL import Image

    from bimors.run.predict import Predictor

    predictor = Predictor.from_run(out, device="cpu")
    assert not predictor.method.training  # dropout off in predict
    images = [Image.new("RGB", (32, 32), (90 + 40 * i, 140, 60)) for i in range(3)]
    got = predictor.predict(images, topk=2)
    # an independent rebuild: a fresh method on the same backbone, loaded from the checkpoint
    fresh = build_method("clip_lora", predictor.trained.backbone, payload["classnames"], names=None)
    fresh.load_method_state_dict(payload["state"])
    fresh.eval()
    pixels = torch.stack([predictor.transform(im) for im in images])
    with torch.no_grad():
        probs = fresh(fresh.image_features(pixels)).softmax(-1)
    for row, p in zip(got, probs, strict=True):
        name, prob = row[0]
        assert payload["classnames"][int(p.argmax())] == name
        assert abs(float(p.max()) - prob) < 1e-5
    plain = build_method("clip_lora", predictor.trained.backbone, payload["classnames"], names=None)
    assert not torch.equal(  # training moved the LoRA weights off their zero-shot start
        plain.method_state_dict()[next(k for k in payload["state"] if "lora_B" in k)],
        payload["state"][next(k for k in payload["state"] if "lora_B" in k)],
    )


def test_grad_checkpointing_is_refused_with_the_reason(hf_backbone):
    from bimors.core.errors import ConfigError

    with pytest.raises(ConfigError, match="grad_checkpointing"):
        build_method("clip_lora", hf_backbone, CLASSNAMES, {"grad_checkpointing": True})
