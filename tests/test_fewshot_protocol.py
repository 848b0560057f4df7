"""The few-shot protocol (issue 23): its plan, ``--shots``, the report and the offline grid."""

from __future__ import annotations

import argparse
import json
from collections import Counter

import pytest

from bimors.cli.run import sweeps_of
from bimors.core.errors import ConfigError
from bimors.data.fewshot import draw_fewshot
from bimors.data.synthetic import SyntheticScenes
from bimors.methods.presets import resolve_preset
from bimors.protocols import PROTOCOL_NAMES
from bimors.protocols.plans import PROTOCOLS
from bimors.report.fewshot import fewshot_figure, fewshot_markdown, fewshot_tables, load_published


def test_protocol_names_are_the_registry():
    assert set(PROTOCOL_NAMES) == set(PROTOCOLS.names())


@pytest.mark.parametrize("sampler", ["hash", "dassl"])
@pytest.mark.parametrize("shots", [1, 2, 4])
def test_plan_trains_on_every_class_and_tests_the_whole_split(scenes, sampler, shots):
    ds = SyntheticScenes(scenes)
    split = ds.split()
    plan = PROTOCOLS.get("fewshot").build(ds, shots, 3, sampler=sampler)
    assert plan.protocol == "fewshot" and plan.train.classnames == split.classnames
    per_class = Counter(s.label for s in plan.train.samples)
    assert set(per_class) == set(range(len(split.classnames)))
    assert all(n == shots for n in per_class.values())
    have = Counter(s.label for s in split.val)
    got = Counter(s.label for s in plan.val.samples)
    assert set(got) == set(have)
    if sampler == "hash":  # a class with fewer val images gives them all (dassl repeats them)
        assert got == {c: min(shots, 4, n) for c, n in have.items()}
    [ev] = plan.evals
    assert ev.split == "all" and ev.task.samples == list(split.test)
    want = draw_fewshot(
        {"train": (split.train, shots), "val": (split.val, min(shots, 4))}, 3, ds.name, sampler
    )
    assert plan.fewshot == want
    assert plan.train.samples == [split.train[i] for i in want["train"]]
    with pytest.raises(ValueError, match="no targets"):
        PROTOCOLS.get("fewshot").build(ds, shots, 3, [ds], sampler=sampler)


def test_shots_flag_is_the_shots_axis():
    ns = argparse.Namespace(sweep=["method.n_ctx=2,4"], shots=[1, 2, 4, 8, 16])
    assert sweeps_of(ns) == ["method.n_ctx=2,4", "data.shots=1,2,4,8,16"]
    assert sweeps_of(argparse.Namespace(sweep=[], shots=None)) == []
    with pytest.raises(ConfigError, match="keep one"):
        sweeps_of(argparse.Namespace(sweep=["data.shots=1,2"], shots=[4]))
    with pytest.raises(ConfigError, match=">= 1"):
        sweeps_of(argparse.Namespace(sweep=[], shots=[0, 1]))


def test_fewshot_is_a_preset_layer_name():
    _, record = resolve_preset("coop", "fewshot", "eurosat")
    assert record.protocol == "fewshot"


def _rec(method, dataset, shots, seed, acc, backbone="hf:a"):
    return {
        "protocol": "fewshot",
        "method": method,
        "dataset": dataset,
        "train_dataset": dataset,
        "split": "all",
        "shots": shots,
        "seed": seed,
        "accuracy": acc,
        "backbone": backbone,
        "sweep": {"data.shots": shots},
    }


def _records():
    out = []
    for backbone, bump in (("hf:a", 0.0), ("hf:b", 10.0)):
        for dataset, base in (("eurosat", 50.0), ("aid", 70.0)):
            for shots in (1, 2, 4):
                for seed, d in ((1, -1.0), (2, 1.0)):
                    out.append(
                        _rec("coop", dataset, shots, seed, base + shots + d + bump, backbone)
                    )
                    out.append(_rec("linear_probe", dataset, shots, seed, base + bump, backbone))
    return out


def test_tables_per_backbone_dataset_and_average_never_merged(tmp_path):
    ref = tmp_path / "fewshot_published.json"
    ref.write_text(
        json.dumps(
            {
                "lines": [
                    {
                        "method": "coop",
                        "dataset": "eurosat",
                        "backbone": "hf:a",
                        "source": "hand-made",
                        "accuracy": {"1": 40.5, "4": 61.0},
                    }
                ]
            }
        )
    )
    tables = fewshot_tables(_records(), load_published(ref))
    assert [(t.backbone, t.dataset) for t in tables] == [
        ("hf:a", "aid"),
        ("hf:a", "eurosat"),
        ("hf:a", "average"),
        ("hf:b", "aid"),
        ("hf:b", "eurosat"),
        ("hf:b", "average"),
    ]
    eur_a, avg_a, eur_b = tables[1], tables[2], tables[4]
    assert eur_a.shots == [1, 2, 4]
    c = eur_a.cells["coop"][2]
    assert (c.mean, round(c.std, 6), c.seeds) == (52.0, round(2**0.5, 6), 2)
    assert eur_b.cells["coop"][2].mean == 62.0  # the other backbone's numbers stay apart
    assert avg_a.cells["coop"][4].mean == (54.0 + 74.0) / 2
    assert eur_a.published == {"coop": {1: 40.5, 4: 61.0}} and eur_b.published == {}
    md = fewshot_markdown(eur_a)
    assert "| CoOp | 51.00 ± 1.41 | 52.00 ± 1.41 | 54.00 ± 1.41 |" in md  # the papers' names
    assert "| CoOp (published) | 40.50 | – | 61.00 |" in md
    png = fewshot_figure(tables[:3], tmp_path / "a.png")
    assert png.stat().st_size > 0


@pytest.mark.parametrize(
    "text, match",
    [
        ("[]", "'lines' list"),
        ('{"lines": [{"method": "coop", "dataset": "aid"}]}', "lacks 'accuracy'"),
        ('{"lines": [{"method": "m", "dataset": "d", "accuracy": {"one": 1}}]}', "shot counts"),
        ("{", "not JSON"),
    ],
)
def test_reference_file_errors_name_the_field(tmp_path, text, match):
    ref = tmp_path / "ref.json"
    ref.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_published(ref)


@pytest.mark.slow
def test_offline_grid_two_methods_three_shots_two_backbones_resumes_and_reports(tmp_path):
    from bimors.demo.fewshot import run_fewshot_demo

    first = run_fewshot_demo(tmp_path)
    assert len(first["records"]) == 2 * 3 * 2 * 2  # methods x shots x backbones x seeds
    results = sorted((tmp_path / "runs").rglob("results.jsonl"))
    assert len(results) == 24
    stamps = [p.stat().st_mtime_ns for p in results]
    second = run_fewshot_demo(tmp_path)  # resume: every run is finished, none is redone
    assert [p.stat().st_mtime_ns for p in results] == stamps
    assert second["markdown"].count("## Few-shot protocol, backbone") == 2
    tables = second["fewshot"]
    assert len({t.backbone for t in tables}) == 2
    assert all(t.shots == [1, 2, 4] and set(t.cells) == {"coop", "clip_adapter"} for t in tables)
    assert all(c.seeds == 2 for t in tables for cells in t.cells.values() for c in cells.values())
    features = [p for p in (tmp_path / "features").iterdir() if p.name != "views"]
    assert len(features) == 2  # each backbone its own feature cache
    assert sum(p.suffix == ".png" and "fewshot_protocol" in p.name for p in second["files"]) == 2
