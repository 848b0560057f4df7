"""The GPU figures script stays runnable: its --smoke mode on this machine's CPU."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_figures.py"


def _eos_first(monkeypatch) -> None:
    """Make every random BLIP-2 want to stop at once: only the forced budget keeps it going."""
    from transformers import Blip2ForConditionalGeneration

    init = Blip2ForConditionalGeneration.__init__

    def eager_to_stop(self, config, *args, **kwargs):
        init(self, config, *args, **kwargs)
        eos = config.text_config.eos_token_id

        def boost(module, inputs, logits):
            logits[..., eos] += 1e4
            return logits

        self.get_output_embeddings().register_forward_hook(boost)

    monkeypatch.setattr(Blip2ForConditionalGeneration, "__init__", eager_to_stop)


def test_smoke_run_writes_the_figures_with_the_forced_token_budget(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("gpu_figures", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _eos_first(monkeypatch)
    argv = ["--smoke", "--device", "cpu", "--out", str(tmp_path), "--caption-batches", "2"]
    assert module.main([*argv, "--rounds", "1", "--methods", "coop"]) == 0
    result = json.loads((tmp_path / "gpu_figures.json").read_text())
    (caption,) = result["captioning"]
    assert caption["batch"] == 2 and caption["images_per_s"] > 0
    assert caption["generated_tokens"] == 16  # the full budget, though EOS comes first
    (coop,) = result["methods"]
    assert coop["method"] == "coop"
    assert coop["train_steps_per_s_default"] > 0 and coop["train_steps_per_s_cached"] > 0
    assert coop["eval_images_per_s"] > 0
    table = (tmp_path / "gpu_figures.md").read_text()
    assert "| 2 |" in table and "| coop |" in table
