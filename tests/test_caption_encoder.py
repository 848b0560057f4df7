"""Caption pieces of the foundation: the tiny BLIP-2 captions in batches, MiniLM pools exactly."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from bimors.captions.captioner import Captioner, GenerationSettings
from bimors.captions.encoder import CaptionEncoder
from bimors.data.synthetic import SCENES, draw_scene
from bimors.demo.tiny import minilm_path


def test_tiny_blip2_batch_equals_single_and_depends_on_the_image(tiny_dir):
    cap = Captioner.from_pretrained(str(tiny_dir / "blip2"), GenerationSettings(4, 16))
    images = [draw_scene(name, 0, 0, 32) for name in list(SCENES)[:4]]
    batch = cap.caption(images)
    single = [cap.caption([im])[0] for im in images]
    assert batch == single
    assert len(set(batch)) > 1, "a random captioner that ignores the image hides bugs"
    assert all(isinstance(t, str) and t for t in batch)


def test_caption_encoder_masked_mean_equals_unpadded_mean():
    enc = CaptionEncoder.from_pretrained(str(minilm_path()))
    texts = ["a river", "an airport with a long runway next to a parking lot", "trees"]
    batch = enc.encode(texts)
    assert batch.shape == (3, 384) and batch.dtype == torch.float32
    for i, text in enumerate(texts):
        ids = enc.tokenizer(text, return_tensors="pt")  # one caption, no padding at all
        with torch.no_grad():
            hidden = enc.model(**ids).last_hidden_state[0]
        assert ids["input_ids"][0, 0] == enc.tokenizer.cls_token_id  # [CLS] included
        assert ids["input_ids"][0, -1] == enc.tokenizer.sep_token_id  # [SEP] included
        torch.testing.assert_close(batch[i], hidden.mean(0), atol=1e-5, rtol=1e-5)


def test_caption_encoder_is_a_real_pretrained_model():
    enc = CaptionEncoder.from_pretrained(str(minilm_path()))
    v = enc.encode(
        ["a river flowing through green fields", "a river crossing farmland", "a parking lot"]
    )
    cos = torch.nn.functional.cosine_similarity
    assert cos(v[0], v[1], dim=0) > cos(v[0], v[2], dim=0) + 0.1


def test_captioner_accepts_non_rgb_images(tiny_dir):
    cap = Captioner.from_pretrained(str(tiny_dir / "blip2"), GenerationSettings(1, 4))
    gray = Image.fromarray(np.zeros((20, 30), dtype=np.uint8))
    assert len(cap.caption([gray])) == 1
