"""Methods: registry, structure of BiMoRS, which parameters train, and strict state loading."""

from __future__ import annotations

import hashlib

import pytest
import torch
import torch.nn.functional as F

from bimors.core.errors import CheckpointError, ConfigError, UnknownNameError
from bimors.methods import METHODS, build_method
from bimors.methods.modules import PreNormCrossAttention

from .conftest import CLASSNAMES


def _digest(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def test_registry_lists_methods_and_rejects_unknown():
    assert METHODS.names()[:4] == ["zeroshot", "coop", "cocoop", "bimors"]
    with pytest.raises(UnknownNameError, match=r"valid methods: .*bimors.*coop"):
        METHODS.get("maple2")


def test_unknown_method_option_names_the_field(hf_backbone):
    with pytest.raises(ConfigError, match=r"method.bimors: unknown field\(s\) n_kontext"):
        build_method("bimors", hf_backbone, CLASSNAMES, {"n_kontext": 4}, caption_dim=8)


def test_bimors_trains_exactly_its_own_modules(backbone):
    m = build_method("bimors", backbone, CLASSNAMES, caption_dim=24)
    names = {n for n, p in m.named_parameters() if p.requires_grad}
    assert names == {
        "ctx",
        "meta_net.linear1.weight",
        "meta_net.linear1.bias",
        "meta_net.linear2.weight",
        "meta_net.linear2.bias",
        "caption_proj.weight",
        "caption_proj.bias",
        "cross_attn.norm_q.weight",
        "cross_attn.norm_q.bias",
        "cross_attn.norm_kv.weight",
        "cross_attn.norm_kv.bias",
        "cross_attn.attn.in_proj_weight",
        "cross_attn.attn.in_proj_bias",
        "cross_attn.attn.out_proj.weight",
        "cross_attn.attn.out_proj.bias",
    }
    assert set(m.method_state_dict()) == names
    # widths come from the backbone: W -> W/16 -> D, caption -> D
    assert m.meta_net.linear1.in_features == backbone.vision_width
    assert m.meta_net.linear1.out_features == backbone.vision_width // 16
    assert m.meta_net.linear2.out_features == backbone.text_width
    assert m.caption_proj.in_features == 24
    assert m.ctx.shape == (4, backbone.text_width)


def test_bimors_ctx_starts_as_a_photo_of_a(backbone):
    m = build_method("bimors", backbone, CLASSNAMES, caption_dim=8)
    ids = backbone.tokenize(["a photo of a"])
    torch.testing.assert_close(m.ctx.detach(), backbone.embed_tokens(ids)[0, 1:5])


def test_bimors_conditioning_matches_the_paper_equations(hf_backbone):
    torch.manual_seed(0)
    m = build_method("bimors", hf_backbone, CLASSNAMES, caption_dim=8)
    size = hf_backbone.preprocess.image_size
    feats = hf_backbone.encode_image(torch.randn(2, 3, size, size))
    caps = torch.randn(2, 8)
    with torch.no_grad():
        got = m.conditioned_context(feats, caps)
        # meta-net on every token, then the mean over tokens (CLS + patches)
        h = F.relu(feats.tokens @ m.meta_net.linear1.weight.T + m.meta_net.linear1.bias)
        visual = (h @ m.meta_net.linear2.weight.T + m.meta_net.linear2.bias).mean(1)
        textual = caps @ m.caption_proj.weight.T + m.caption_proj.bias
        keys = torch.stack([visual, textual], 1)
        ca = m.cross_attn
        want = m.ctx.unsqueeze(0) + _attention(
            ca, ca.norm_q(m.ctx).expand(2, -1, -1), ca.norm_kv(keys)
        )
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def _attention(ca: PreNormCrossAttention, q, kv):
    """Multi-head attention written out: softmax(QK^T/sqrt(d))V per head, then out_proj."""
    attn = ca.attn
    d, h = attn.embed_dim, attn.num_heads
    wq, wk, wv = attn.in_proj_weight.split(d)
    bq, bk, bv = attn.in_proj_bias.split(d)
    Q, K, V = q @ wq.T + bq, kv @ wk.T + bk, kv @ wv.T + bv

    def heads(x):
        return x.view(x.shape[0], x.shape[1], h, d // h).transpose(1, 2)

    w = torch.softmax(heads(Q) @ heads(K).transpose(-1, -2) / (d // h) ** 0.5, dim=-1)
    out = (w @ heads(V)).transpose(1, 2).reshape(q.shape)
    return out @ attn.out_proj.weight.T + attn.out_proj.bias


@pytest.mark.parametrize("name", ["coop", "cocoop", "bimors"])
def test_a_step_trains_every_own_parameter_and_never_clip(backbone, name):
    torch.manual_seed(0)
    m = build_method(name, backbone, CLASSNAMES, caption_dim=8)
    before = _digest(backbone)
    opt = torch.optim.SGD(m.trainable_parameters(), lr=0.1)
    size = backbone.preprocess.image_size
    feats = m.image_features(torch.randn(4, 3, size, size))
    loss = m.loss(m(feats, torch.randn(4, 8)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    for n, p in m.own_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {n}"
    opt.step()
    assert _digest(backbone) == before
    assert all(p.grad is None for p in backbone.parameters())


def test_zeroshot_has_nothing_to_train(backbone):
    m = build_method("zeroshot", backbone, CLASSNAMES)
    assert m.trainable_parameters() == []
    with pytest.raises(ConfigError, match="template"):
        build_method("zeroshot", backbone, CLASSNAMES, {"template": "no slot"})


def test_frozen_caption_projection_is_reproducible_and_saved(hf_backbone):
    a = build_method("bimors", hf_backbone, CLASSNAMES, {"caption_proj": "frozen"}, caption_dim=8)
    torch.manual_seed(123)  # the global RNG must not matter
    b = build_method("bimors", hf_backbone, CLASSNAMES, {"caption_proj": "frozen"}, caption_dim=8)
    assert not a.caption_proj.weight.requires_grad
    torch.testing.assert_close(a.caption_proj.weight, b.caption_proj.weight, atol=0, rtol=0)
    assert "caption_proj.weight" in a.method_state_dict()


def test_state_round_trip_and_strict_mismatch(hf_backbone, oc_backbone):
    a = build_method("cocoop", hf_backbone, CLASSNAMES)
    with torch.no_grad():
        a.ctx.add_(1.0)
    b = build_method("cocoop", hf_backbone, CLASSNAMES)
    b.load_method_state_dict(a.method_state_dict())
    for (n, p), (_, q) in zip(a.own_parameters(), b.own_parameters(), strict=True):
        assert torch.equal(p, q), n
    state = a.method_state_dict()
    state.pop("meta_net.linear1.bias")
    state["extra.weight"] = torch.zeros(1)
    state["ctx"] = torch.zeros(3, 3)
    with pytest.raises(CheckpointError) as err:
        b.load_method_state_dict(state, "ckpt.pt")
    msg = str(err.value)
    assert "missing keys: meta_net.linear1.bias" in msg
    assert "unexpected keys: extra.weight" in msg
    assert "ctx: (3, 3) in ckpt.pt, (4, 64) in the model" in msg


def test_switching_class_set_keeps_learned_context(hf_backbone):
    m = build_method("coop", hf_backbone, CLASSNAMES[:3])
    ctx = m.ctx.detach().clone()
    m.set_classnames(CLASSNAMES[3:])
    assert m.prompts.num_classes == 2
    assert torch.equal(m.ctx, ctx)
