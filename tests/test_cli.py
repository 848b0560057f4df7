"""The command line: list, tiny-models, demo, and errors without tracebacks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from bimors.cli import main


def test_list_prints_methods_backbones_datasets(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "methods:   zeroshot, coop, cocoop, bimors" in out
    assert "backbones: hf, open_clip" in out
    assert "imagefolder" in out


def test_console_script_is_installed():
    # beside the interpreter running the tests: the environment's scripts folder
    exe = shutil.which("bimors", path=str(Path(sys.executable).parent))
    assert exe, f"the bimors console script is not installed in {Path(sys.executable).parent}"
    out = subprocess.run([exe, "list"], capture_output=True, text=True, check=True).stdout
    assert "methods:" in out


def test_tiny_models_are_loadable_by_path(tmp_path, capsys):
    assert main(["tiny-models", "--out", str(tmp_path)]) == 0
    from bimors.backbones import load_backbone

    assert load_backbone("hf", str(tmp_path / "clip-hf")).embed_dim == 32
    assert load_backbone("open_clip", str(tmp_path / "clip-openclip")).embed_dim == 32
    assert (tmp_path / "blip2" / "config.json").is_file()


def test_user_errors_exit_2_with_the_message_only(monkeypatch, capsys):
    import bimors.cli.listing as listing
    from bimors.core.errors import DataError

    def boom(args):
        raise DataError("image /x/y.png cannot be decoded; replace the file")

    monkeypatch.setattr(listing, "run", boom)
    assert main(["list"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "bimors: error: image /x/y.png cannot be decoded; replace the file"


@pytest.mark.slow
def test_demo_writes_results_report_and_plot(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["-q", "demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert {(r["method"], r["split"]) for r in records} == {
        (m, s) for m in ("zeroshot", "coop", "cocoop", "bimors") for s in ("base", "new")
    }
    for r in records:
        assert {"method", "dataset", "protocol", "split", "seed", "accuracy"} <= set(r)
        assert r["protocol"] == "base2new" and r["dataset"] == "synthetic" and r["seed"] == 1
        assert 0.0 <= r["accuracy"] <= 100.0
    report = (out / "report.md").read_text()
    assert "| Method | synthetic Base | synthetic New | synthetic H |" in report
    for m in ("CLIP", "CoOp", "CoCoOp", "BiMoRS"):
        assert f"| {m} | " in report and f"| {m} | " in printed
    assert "TINY RANDOM-WEIGHT" in printed and "bimors run --protocol base2new" in printed
    with Image.open(out / "base2new.png") as im:
        assert im.format == "PNG" and im.size[0] > 100
    # trained methods leave checkpoints and metrics; the zero-shot run has nothing to train
    assert (
        out / "runs" / "base2new" / "synthetic" / "bimors" / "seed1" / "checkpoint.pt"
    ).is_file()
    assert (
        out / "runs" / "base2new" / "synthetic" / "bimors" / "seed1" / "metrics.jsonl"
    ).is_file()
    assert not list(out.rglob("*.tmp"))
