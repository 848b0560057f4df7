"""The GPU figures script stays runnable: its --smoke mode on this machine's CPU."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_figures.py"


def test_smoke_run_writes_the_figures_with_the_forced_token_budget(tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_figures", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    argv = ["--smoke", "--device", "cpu", "--out", str(tmp_path), "--caption-batches", "2"]
    assert module.main([*argv, "--rounds", "1", "--methods", "coop"]) == 0
    result = json.loads((tmp_path / "gpu_figures.json").read_text())
    (caption,) = result["captioning"]
    assert caption["batch"] == 2 and caption["images_per_s"] > 0
    assert caption["generated_tokens"] == 16  # random weights still write the full budget
    (coop,) = result["methods"]
    assert coop["method"] == "coop"
    assert coop["train_steps_per_s_default"] > 0 and coop["train_steps_per_s_cached"] > 0
    assert coop["eval_images_per_s"] > 0
    table = (tmp_path / "gpu_figures.md").read_text()
    assert "| 2 |" in table and "| coop |" in table
