"""A record names what produced it, and ``bimors report`` never merges different identities.

Two zero-shot runs with different weights on the same architecture used to
become one "CLIP" row with one seed per cell, one run dropped without a word;
a 2-shot run on another backbone got a Δ against the paper's 16-shot ViT-B/16.
"""

from __future__ import annotations

import json

from bimors.backbones.weights_hash import file_sha256, weights_identity
from bimors.report.build import build_report, report_tables
from bimors.report.identity import identity, paper_mismatch
from bimors.run.config import resolve_config
from bimors.run.identity import run_identity


def _rec(seed: int, acc: float, ident: dict | None = None, **kw) -> list[dict]:
    base = {
        "method": "zeroshot",
        "dataset": "ucm",
        "train_dataset": "ucm",
        "protocol": "base2new",
        "seed": seed,
        "total": 10,
        "correct": 5,
        "backbone": "open_clip:ViT-B-32-quickgelu",
        **kw,
    }
    if ident is not None:
        base["identity"] = ident
    return [
        {**base, "split": "base", "accuracy": acc},
        {**base, "split": "new", "accuracy": acc - 10},
    ]


def _ident(weights: dict, shots: int = 16, arch: str = "ViT-B-16") -> dict:
    return {
        "adapter": "open_clip",
        "architecture": arch,
        "activation": "quick_gelu",
        "weights": weights,
        "captions": None,
        "shots": shots,
        "sampler": "hash",
        "epochs": 0,
        "preset_layers": ["base2new"],
        "version": "0",
    }


def test_weights_identity_hashes_a_file_once_per_size_and_mtime(tmp_path):
    f = tmp_path / "w.pt"
    f.write_bytes(b"abc")
    ident = weights_identity("open_clip", "ViT-B-32-quickgelu", str(f), None)
    assert ident["sha256"] == file_sha256(f)
    assert ident["sha256"].startswith("ba7816bf")  # SHA-256 of b"abc"
    assert weights_identity("open_clip", "ViT-B-32", "openai", None) == {
        "preset": None,
        "id": "openai",
    }


def test_run_identity_names_every_field():
    cfg = resolve_config("coop", overrides=["data.shots=4"])
    ident = run_identity(cfg, "quick_gelu", uses_captions=False)
    want = {"adapter", "architecture", "activation", "weights", "captions", "shots"}
    want |= {"sampler", "epochs", "preset_layers", "version"}
    assert want <= set(ident)
    assert ident["shots"] == 4 and ident["captions"] is None and ident["activation"] == "quick_gelu"
    json.dumps(ident)  # goes into results.jsonl


def test_report_keeps_runs_on_different_weights_apart_and_lists_seeds():
    a = _ident({"preset": None, "id": "openai"}, arch="ViT-B-32-quickgelu")
    b = _ident(
        {"preset": None, "file": "/x/remoteclip.pt", "sha256": "f" * 64}, arch=a["architecture"]
    )
    records = _rec(1, 60.0, a) + _rec(1, 70.0, b)
    tables = report_tables(records)
    assert len(tables) == 2  # one per weights, not one merged row with a run dropped
    means = sorted(
        line.cells[("ucm", "base")].ours.mean for t in tables for line in t.lines if line.has_ours
    )
    assert means == [60.0, 70.0]
    assert tables[0].title != tables[1].title
    assert any("sha256 ffffffffffff" in t.title for t in tables)
    assert all(any("seed 1" in n for n in t.notes) for t in tables)


def test_seeds_of_one_identity_share_a_cell():
    a = _ident({"preset": None, "id": "openai"})
    (table,) = report_tables(_rec(1, 60.0, a) + _rec(2, 62.0, a))
    (line,) = [line for line in table.lines if line.has_ours]
    assert line.cells[("ucm", "base")].ours.n == 2


def test_no_delta_beside_runs_whose_shots_or_backbone_differ_from_the_paper():
    assert paper_mismatch(_ident({"preset": None, "id": "openai"})) == []
    two = _ident({"preset": None, "id": "openai"}, shots=2, arch="ViT-B-32")
    assert len(paper_mismatch(two)) == 2
    same = _ident({"preset": None, "id": "openai"})
    (shown,) = report_tables(_rec(1, 60.0, same, dataset="patternnet"))
    assert any(line.has_published for line in shown.lines)  # the paper's setting: a Δ
    (table,) = report_tables(_rec(1, 60.0, two, dataset="patternnet"))
    assert not any(line.has_published for line in table.lines)
    assert any("2 shots, not 16" in n for n in table.notes)


def test_old_records_without_identity_still_report(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    lines = _rec(1, 60.0, None, shots=16, backbone_activation="quick_gelu")
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    out = build_report(tmp_path, per_run=False)
    assert identity(lines[0])["architecture"] == "ViT-B-32-quickgelu"
    assert out["tables"] and "60.00" in out["markdown"]
