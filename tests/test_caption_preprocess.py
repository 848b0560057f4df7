"""Official caption settings: the official script's image preprocessing and token budget.

The official ``gen_caption.py`` (ipankhi/BiMoRS) shows BLIP-2 not the decoded
image but ``ToPILImage(minmax(ToTensor(Resize((224, 224))(image))))`` and
calls ``generate(..., max_length=16)``. Its maths is re-stated here twice:
with the torchvision transforms it calls, and with plain torch tensor
operations, and ``captions.preprocess=official`` must give the same bytes.
"""

from __future__ import annotations

import shlex

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from bimors.captions.captioner import OFFICIAL_SETTINGS, Captioner, GenerationSettings
from bimors.captions.preprocess import official_preprocess, preprocessor
from bimors.captions.provenance import caption_command, expected_provenance
from bimors.captions.store import CaptionStore
from bimors.core.errors import ConfigError, DataError
from bimors.run.config import CaptionConfig, resolve_config

from .test_captions_store import PROV  # one provenance fixture for both


def official_with_torchvision(image: Image.Image) -> Image.Image:
    """The official script's steps, with the torchvision transforms it uses."""
    t = transforms.ToTensor()(transforms.Resize((224, 224))(image.convert("RGB")))
    t = (t - t.min()) / (t.max() - t.min())
    return transforms.ToPILImage()(t)


def official_with_torch(image: Image.Image) -> Image.Image:
    """The same maths in tensor operations: bilinear resize, /255, min-max, *255, truncate."""
    resized = image.convert("RGB").resize((224, 224), Image.BILINEAR)
    t = torch.from_numpy(np.array(resized, dtype=np.uint8)).permute(2, 0, 1).float().div(255)
    t = (t - t.min()) / (t.max() - t.min())
    return Image.fromarray(t.mul(255).to(torch.uint8).permute(1, 2, 0).numpy(), "RGB")


def sample_images(scene_paths) -> list[Image.Image]:
    """Synthetic scenes plus images that exercise the resize, the stretch and the mode."""
    rng = np.random.default_rng(0)
    images = [Image.open(p) for p in scene_paths]
    low_contrast = rng.integers(90, 140, (300, 500, 3), dtype=np.uint8)  # stretched a lot
    images += [
        Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)),
        Image.fromarray(low_contrast),  # not square: aspect ratio is not kept
        Image.fromarray(rng.integers(30, 200, (120, 90), dtype=np.uint8), "L"),  # grey
        Image.fromarray(rng.integers(0, 256, (64, 64, 4), dtype=np.uint8), "RGBA"),
    ]
    return images


@pytest.fixture(scope="module")
def scene_paths(scenes):
    return sorted(scenes.rglob("*.png"))[:6]


def test_official_preprocess_equals_the_official_script_on_sample_images(scene_paths):
    images = sample_images(scene_paths)
    assert len(images) >= 8
    for image in images:
        ours = np.asarray(official_preprocess(image))
        assert ours.shape == (224, 224, 3) and ours.dtype == np.uint8
        np.testing.assert_array_equal(ours, np.asarray(official_with_torchvision(image)))
        np.testing.assert_array_equal(ours, np.asarray(official_with_torch(image)))
        assert ours.min() == 0 and ours.max() == 255  # stretched to the full range
    # the stretch matters: the plain path would not give these bytes
    plain = np.asarray(preprocessor("none")(images[-3]).resize((224, 224), Image.BILINEAR))
    assert not np.array_equal(plain, np.asarray(official_preprocess(images[-3])))


def test_a_constant_image_becomes_black_instead_of_nan():
    out = np.asarray(official_preprocess(Image.new("RGB", (50, 40), (7, 7, 7))))
    assert out.shape == (224, 224, 3) and not out.any()


def test_unknown_preprocess_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match="none, official"):
        GenerationSettings(preprocess="clahe")


class _Spy:
    """Records what the captioner hands its processor and ``generate``."""

    def __init__(self, captioner: Captioner) -> None:
        self.images: list[Image.Image] = []
        self.kwargs: dict = {}
        processor, generate = captioner.processor, captioner.model.generate

        def process(**kw):
            self.images = list(kw["images"])
            return processor(**kw)

        def gen(**kw):
            self.kwargs = kw
            return generate(**kw)

        captioner.processor = type("P", (), {"__call__": staticmethod(process)})()
        captioner.processor.batch_decode = processor.batch_decode
        captioner.model.generate = gen


def test_captioner_shows_the_official_image_and_passes_the_official_budget(tiny_dir, scene_paths):
    settings = GenerationSettings(num_beams=2, max_new_tokens=None, max_length=40)
    settings = GenerationSettings(**{**settings.as_dict(), "preprocess": "official"})
    captioner = Captioner.from_pretrained(str(tiny_dir / "blip2"), settings)
    spy = _Spy(captioner)
    image = Image.open(scene_paths[0])
    texts = captioner.caption([image])
    assert len(texts) == 1
    np.testing.assert_array_equal(np.asarray(spy.images[0]), np.asarray(official_preprocess(image)))
    assert spy.kwargs["max_length"] == 40 and "max_new_tokens" not in spy.kwargs
    plain = Captioner.from_pretrained(str(tiny_dir / "blip2"), GenerationSettings(num_beams=2))
    spy = _Spy(plain)
    plain.caption([image])
    assert spy.images[0].size == image.size  # the decoded image, unchanged
    assert spy.kwargs["max_new_tokens"] == 16 and "max_length" not in spy.kwargs


def test_the_bimors_preset_reproduces_the_official_caption_script():
    c = resolve_config("bimors").captions
    assert (c.preprocess, c.max_length, c.max_new_tokens, c.num_beams) == ("official", 16, None, 4)
    g = c.generation()
    assert g.budget() == {"max_length": 16} and g.preprocess == "official" and g.early_stopping
    # the current behaviour stays available
    cur = resolve_config(
        "bimors",
        overrides=[
            "captions.preprocess=none",
            "captions.max_length=null",
            "captions.max_new_tokens=16",
        ],
    ).captions
    assert cur.generation().budget() == {"max_new_tokens": 16} and cur.preprocess == "none"
    with pytest.raises(ConfigError, match="exactly one of captions.max_new_tokens"):
        resolve_config("bimors", overrides=["captions.max_new_tokens=16"])


def _expect(c: CaptionConfig) -> dict:
    return expected_provenance(c.captioner, c.encoder, generation=c.expected_generation())


def test_store_provenance_tells_official_from_plain_captions(tmp_path):
    # a store written before these settings existed was made the plain way
    old = CaptionStore.open_or_create(tmp_path / "old.sqlite", PROV)
    old.commit([("a.png", "h", "a caption", np.zeros(4, dtype=np.float32))])
    old.check(_expect(CaptionConfig()), "the run config", "fix")
    official = CaptionConfig(max_new_tokens=None, max_length=16, preprocess="official")
    with pytest.raises(DataError, match="preprocess"):
        old.check(_expect(official), "the run config", "fix")
    old.close()
    # an official store records both settings and is refused by a plain config
    gen = {**PROV["generation"], **official.generation().as_dict()}
    new = CaptionStore.open_or_create(tmp_path / "new.sqlite", {**PROV, "generation": gen})
    new.check(_expect(official), "the run config", "fix")
    with pytest.raises(DataError, match="max_length"):
        new.check(_expect(CaptionConfig()), "the run config", "fix")
    new.close()
    # the command that makes such a store asks for the official settings
    # the command that makes such a store: the CLI defaults are the official settings
    args = shlex.split(caption_command("patternnet", tmp_path, None, _expect(official)))
    assert not {"--max-length", "--max-new-tokens", "--preprocess"} & set(args)
    assert resolve_config("bimors").captions.generation() == OFFICIAL_SETTINGS
    plain = shlex.split(caption_command("patternnet", tmp_path, None, _expect(CaptionConfig())))
    assert plain[plain.index("--max-new-tokens") + 1] == "16"
    assert plain[plain.index("--preprocess") + 1] == "none"
    other = {**official.expected_generation(), "max_length": 20}
    args = shlex.split(caption_command("p", tmp_path, None, {"generation": other}))
    assert args[args.index("--max-length") + 1] == "20"
