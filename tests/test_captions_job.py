"""Captioner, encoder and the caption job on tiny models (batching, failures, verify, CLI)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bimors.captions.captioner import Captioner, GenerationSettings
from bimors.captions.encoder import CaptionEncoder
from bimors.captions.job import caption_images
from bimors.captions.store import CaptionStore
from bimors.cli import main
from bimors.core.errors import DataError
from bimors.data.images import open_rgb
from bimors.demo.tiny import minilm_path


def _widen(model) -> None:
    """Random weights at a wide scale, so tiny captioners write image-dependent captions."""
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.2)


def write_blip(out: Path) -> Path:
    """A tiny random BLIP (BERT-style decoder) with the MiniLM tokenizer."""
    from transformers import (
        AutoTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    tok = AutoTokenizer.from_pretrained(str(minilm_path()))
    ids = dict(bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id)
    config = BlipConfig(
        text_config=dict(
            vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
            num_attention_heads=2, encoder_hidden_size=32, max_position_embeddings=64,
            sep_token_id=tok.sep_token_id, pad_token_id=tok.pad_token_id, **ids,
        ),
        vision_config=dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
            image_size=32, patch_size=8,
        ),
        projection_dim=32,
    )  # fmt: skip
    torch.manual_seed(0)
    model = BlipForConditionalGeneration(config).eval()
    _widen(model)
    model.generation_config.update(pad_token_id=tok.pad_token_id, **ids)
    model.save_pretrained(out)
    size = {"height": 32, "width": 32}
    BlipProcessor(image_processor=BlipImageProcessor(size=size), tokenizer=tok).save_pretrained(out)
    return out


def write_git(out: Path) -> Path:
    """A tiny random GIT (decoder-only) with the MiniLM tokenizer."""
    from transformers import (
        AutoTokenizer,
        CLIPImageProcessor,
        GitConfig,
        GitForCausalLM,
        GitProcessor,
    )

    tok = AutoTokenizer.from_pretrained(str(minilm_path()))
    config = GitConfig(
        vision_config=dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
            image_size=32, patch_size=8,
        ),
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, max_position_embeddings=64, bos_token_id=tok.cls_token_id,
        eos_token_id=tok.sep_token_id, pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    model = GitForCausalLM(config).eval()
    _widen(model)
    model.save_pretrained(out)
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    GitProcessor(image_processor=images, tokenizer=tok).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def blip2(tiny_dir) -> str:
    return str(tiny_dir / "blip2")


@pytest.fixture(scope="module")
def captioner(blip2) -> Captioner:
    return Captioner.from_pretrained(blip2, GenerationSettings(num_beams=4, max_new_tokens=16))


@pytest.fixture(scope="module")
def encoder() -> CaptionEncoder:
    return CaptionEncoder.from_pretrained(str(minilm_path()))


@pytest.fixture()
def data(tmp_path) -> Path:
    """A writable image folder: 4 classes x 3 images, 32 px."""
    from bimors.data.synthetic import SCENES, generate_scenes

    return generate_scenes(
        tmp_path / "scenes", per_class=3, size=32, seed=3, classes=list(SCENES)[:4]
    )


def relpaths_of(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.png"))


def rows(path: Path) -> dict[str, tuple]:
    with CaptionStore(path, readonly=True) as store:
        return {r.relpath: (r.sha256, r.caption, r.vector) for r in store}


def test_job_batch_1_and_batch_n_make_the_same_store(data, captioner, encoder, tmp_path):
    keys = relpaths_of(data)[::2]
    caption_images(data, keys, tmp_path / "b1.sqlite", captioner, encoder, 1, False).close()
    caption_images(data, keys, tmp_path / "b3.sqlite", captioner, encoder, 3, False).close()
    one, three = rows(tmp_path / "b1.sqlite"), rows(tmp_path / "b3.sqlite")
    assert sorted(one) == keys == sorted(three)
    captions = [one[k][1] for k in keys]
    assert len(set(captions)) > 1  # captions depend on the image, or this test proves nothing
    assert captions == [three[k][1] for k in keys]
    for k in keys:
        assert one[k][0] == three[k][0]
        np.testing.assert_allclose(one[k][2], three[k][2], atol=1e-5, rtol=0)


def test_encoder_batch_equals_reference_per_caption_mean(encoder):
    texts = ["a river", "dense residential area with many small houses and roads", "a river"]
    texts.append("runway")
    batched = encoder.encode(texts)  # a duplicate caption is encoded once, returned twice
    assert batched.shape == (4, 384) and batched.dtype == torch.float32
    torch.testing.assert_close(batched[0], batched[2], atol=0, rtol=0)
    for text, row in zip(texts, batched, strict=True):
        # The official recipe: one caption alone, mean over all its tokens.
        alone = encoder.tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            ref = encoder.model(**alone).last_hidden_state.mean(dim=1)[0]
        torch.testing.assert_close(row, ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("writer", [write_blip, write_git], ids=["blip", "git"])
def test_other_transformers_captioners_work_batched(writer, data, tmp_path):
    model = writer(tmp_path / "model")
    images = [open_rgb(data / r) for r in relpaths_of(data)[:4]]
    for prompt in (None, "a photo of"):
        cap = Captioner.from_pretrained(str(model), GenerationSettings(2, 8, prompt=prompt))
        batched = cap.caption(images)
        assert len(set(batched)) > 1 and all(batched)
        assert batched == [cap.caption([im])[0] for im in images]
        if prompt:  # the echoed prompt is not part of the caption
            assert not any(c.startswith(prompt) for c in batched)


def test_blip2_with_prompt_batched(blip2, data):
    cap = Captioner.from_pretrained(blip2, GenerationSettings(2, 8, prompt="a photo of"))
    images = [open_rgb(data / r) for r in relpaths_of(data)[:3]]
    assert cap.caption(images) == [cap.caption([im])[0] for im in images]


def test_broken_images_are_listed_and_the_rest_kept(data, captioner, encoder, tmp_path):
    broken = data / "river" / "zz_broken.png"
    broken.write_bytes(b"not an image")
    keys = [*relpaths_of(data), "river/missing.png"]
    store_path = tmp_path / "s.sqlite"
    with pytest.raises(DataError) as err:
        caption_images(data, keys, store_path, captioner, encoder, 4, False)
    msg = str(err.value)
    assert "2 of 14 images could not be captioned" in msg
    assert "zz_broken.png" in msg and "missing.png" in msg
    with CaptionStore(store_path, readonly=True) as store:
        assert len(store) == 12
        assert set(store.failures()) == {"river/zz_broken.png", "river/missing.png"}
    # Fixing the files and rerunning captions them and clears the failures.
    shutil.copy(data / keys[0], broken)
    shutil.copy(data / keys[0], data / "river" / "missing.png")
    with caption_images(data, keys, store_path, captioner, encoder, 4, False) as store:
        assert len(store) == 14 and store.failures() == {}
        assert store.get("river/zz_broken.png").caption == store.get(keys[0]).caption


def test_verify_recaptions_changed_images(data, captioner, encoder, tmp_path):
    keys = relpaths_of(data)
    store_path = tmp_path / "s.sqlite"
    caption_images(data, keys, store_path, captioner, encoder, 4, False).close()
    before = rows(store_path)
    changed = next(k for k in keys if before[k][1] != before[keys[0]][1])
    shutil.copy(data / keys[0], data / changed)  # the image changes under the store
    caption_images(data, keys, store_path, captioner, encoder, 4, False).close()
    assert rows(store_path)[changed][1] == before[changed][1]  # no verify: trusted
    caption_images(data, keys, store_path, captioner, encoder, 4, False, verify=True).close()
    after = rows(store_path)
    assert after[changed][0] == before[keys[0]][0] and after[changed][1] == before[keys[0]][1]


def test_refuses_to_extend_a_store_of_other_settings(data, captioner, encoder, tmp_path, blip2):
    keys = relpaths_of(data)[:2]
    caption_images(data, keys, tmp_path / "s.sqlite", captioner, encoder, 2, False).close()
    other = Captioner.from_pretrained(blip2, GenerationSettings(num_beams=1))
    with pytest.raises(DataError, match=r"generation.num_beams: store has 4, expected 1"):
        caption_images(data, keys, tmp_path / "s.sqlite", other, encoder, 2, False)


def test_cli_caption_show_export_and_complete_rerun(data, blip2, tmp_path, capsys, monkeypatch):
    args = ["-q", "caption", "--dataset", "imagefolder", "--root", str(data)]
    args += ["--captioner", blip2, "--encoder", str(minilm_path()), "--batch-size", "4"]
    assert main([*args, "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "12 captions (384-d vectors)" in out
    store = Path(out.split(" in ")[1].split("\n")[0])
    assert store.parent == data / ".bimors" / "captions"

    # A complete store answers at once: no model is loaded.
    def no_loading(*a, **k):
        raise AssertionError("a model was loaded for a complete store")

    monkeypatch.setattr(Captioner, "from_pretrained", no_loading)
    assert main(args) == 0
    capsys.readouterr()
    assert main(["captions", "show", str(store), "--limit", "3"]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert "12 captions, 0 failures" in shown[0] and len(shown) == 2 + 3
    first = shown[2].split("\t")
    assert main(["captions", "show", str(store), first[0], "nope.png"]) == 1
    assert capsys.readouterr().out.splitlines()[1] == "nope.png\tMISSING"
    assert main(["captions", "export", str(store), str(tmp_path / "c.jsonl")]) == 0
    assert first[1] in (tmp_path / "c.jsonl").read_text()
    assert main(["captions", "verify", str(store), "--root", str(data)]) == 0
    (data / first[0]).write_bytes(b"x")
    assert main(["captions", "verify", str(store), "--root", str(data)]) == 1
    assert f"{first[0]}\tCHANGED" in capsys.readouterr().out
    # Other settings than the store's are refused before any model loads.
    assert main([*args, "--num-beams", "2", "--store", str(store)]) == 2
    assert "num_beams: store has 4, expected 2" in capsys.readouterr().err


def test_no_model_or_transformers_at_import():
    code = (
        "import sys, bimors.cli.caption, bimors.cli.captions, bimors.captions.run, "
        "bimors.captions.job, bimors.captions.export; "
        "print(sorted(m for m in ('transformers', 'accelerate') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.gpu
def test_batched_job_on_cuda(data, blip2, tmp_path):
    enc = CaptionEncoder.from_pretrained(str(minilm_path()), "cuda")
    keys = relpaths_of(data)
    fp32 = Captioner.from_pretrained(blip2, GenerationSettings(), "cuda", torch.float32)
    captions = {}
    for bs in (1, 4):
        with caption_images(data, keys, tmp_path / f"{bs}.sqlite", fp32, enc, bs, False) as store:
            captions[bs] = {r.relpath: r.caption for r in store}
    assert captions[1] == captions[4] and len(captions[1]) == len(keys)
    bf16 = Captioner.from_pretrained(blip2, GenerationSettings(), "cuda", torch.bfloat16)
    with caption_images(data, keys, tmp_path / "bf16.sqlite", bf16, enc, 4, False) as store:
        assert len(store) == len(keys) and store.provenance["captioner_dtype"] == "bfloat16"


def test_a_caption_job_stops_after_committing_its_batch(
    data,
    captioner,
    encoder,
    tmp_path,
    monkeypatch,
):
    """SIGTERM mid-job: the batch is committed, the lock released, the rerun finishes the rest."""
    from bimors.captions.job import caption_images
    from bimors.captions.store import CaptionStore
    from bimors.core.locks import lock_path
    from bimors.core.stop import Stopped

    keys = relpaths_of(data)
    store_path = tmp_path / "s.sqlite"
    caption_images(data, keys, tmp_path / "full.sqlite", captioner, encoder, 2, False).close()
    monkeypatch.setenv("BIMORS_TEST_PAUSE", "SIGTERM@2")
    with pytest.raises(Stopped) as stop:
        caption_images(data, keys, store_path, captioner, encoder, 2, False)
    assert stop.value.exit_code == 143
    assert str(stop.value).startswith("stopped by SIGTERM after batch 2 of ")
    assert not lock_path(store_path).exists()
    with CaptionStore(store_path, readonly=True) as store:
        assert len(store) == 4  # two committed batches of two
    monkeypatch.delenv("BIMORS_TEST_PAUSE")
    caption_images(data, keys, store_path, captioner, encoder, 2, False).close()
    a, b = rows(store_path), rows(tmp_path / "full.sqlite")
    assert a.keys() == b.keys()
    for key in a:
        assert a[key][:-1] == b[key][:-1] and np.array_equal(a[key][-1], b[key][-1]), key
