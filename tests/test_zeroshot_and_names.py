"""Zero-shot runs are finished runs (eval, predict, Predictor) and hand-given class names
reach CLIP through the datasets' prompt-name rule."""

from __future__ import annotations

import pytest
import torch

from bimors.cli import main
from bimors.methods import build_method

from .test_experiments import _records, _train, env  # noqa: F401  (env is a fixture)


@pytest.fixture(scope="module")
def zeroshot_run(env, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("zs") / "zeroshot-run"
    assert _train(env, out, method="zeroshot") == 0
    return out


def test_zeroshot_run_leaves_a_checkpoint_and_evaluates_again(env, zeroshot_run, capsys):  # noqa: F811
    assert (zeroshot_run / "checkpoint.pt").is_file()
    before = _records(zeroshot_run)
    assert main(["-q", "eval", str(zeroshot_run), "--store", f"synthetic={env['store']}"]) == 0
    after = _records(zeroshot_run)
    assert [r["accuracy"] for r in after] == [r["accuracy"] for r in before]


def test_zeroshot_run_predicts_from_cli_and_api(env, zeroshot_run, capsys):  # noqa: F811
    from bimors.run.predict import Predictor

    image = sorted(env["scenes"].rglob("*.png"))[0]
    capsys.readouterr()
    assert main(["-q", "predict", str(zeroshot_run), str(image), "--topk", "2"]) == 0
    printed = capsys.readouterr().out
    assert str(image) in printed and "prompt names (reference):" in printed
    predictor = Predictor.from_run(zeroshot_run, device="cpu")
    (top,) = predictor.predict([image], topk=2)
    assert len(top) == 2 and top[0][0] in predictor.classnames


def test_hand_given_names_follow_the_runs_prompt_rule(env, zeroshot_run):  # noqa: F811
    from bimors.run.predict import Predictor

    plain = Predictor.from_run(zeroshot_run, device="cpu", classnames=["storage tank", "river"])
    under = Predictor.from_run(zeroshot_run, device="cpu", classnames=["storage_tank", "river"])
    assert under.prompt_names == ["storage tank", "river"]
    assert under.classnames == ["storage_tank", "river"]  # reported as the user wrote them
    image = sorted(env["scenes"].rglob("*.png"))[0]
    (a,) = plain.predict([image], topk=2)
    (b,) = under.predict([image], topk=2)
    assert [p for _, p in a] == [p for _, p in b]  # identical prompts, identical scores


def test_build_method_applies_the_prompt_rule(hf_backbone):
    torch.manual_seed(0)
    raw = build_method("zeroshot", hf_backbone, ["storage_tank", "dense_residential"])
    verbatim = build_method(
        "zeroshot", hf_backbone, ["storage_tank", "dense_residential"], names=None
    )
    readable = build_method(
        "zeroshot", hf_backbone, ["storageTank", "dense_residential"], names="readable"
    )
    assert raw.classnames == ["storage tank", "dense residential"]
    assert verbatim.classnames == ["storage_tank", "dense_residential"]
    assert readable.classnames == ["storage tank", "dense residential"]
    feats = hf_backbone.encode_image(torch.randn(2, 3, 32, 32))
    with torch.no_grad():
        # the underscore changes CLIP's tokens, so the logits move: the rule matters
        assert not torch.allclose(raw(feats), verbatim(feats), atol=1e-3)
        torch.testing.assert_close(raw(feats), readable(feats))
