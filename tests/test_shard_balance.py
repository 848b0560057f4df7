"""Shards balanced by cost (issue 23): the estimate, the deal and the 1.25x bound."""

from __future__ import annotations

import pytest

from bimors.grid.cost import deal, run_cost
from bimors.grid.runner import cell_cost, grid_cells
from bimors.grid.sweep import parse_sweeps

TABLE1 = dict(
    sources=["patternnet", "rsicd", "resisc45", "mlrsnet"],
    methods=[
        "zeroshot", "coop", "cocoop", "clip_adapter", "prograd", "maple", "applenet", "bimors"
    ],
)  # fmt: skip


def _loads(protocol, sources, methods, seeds, n, points=None):
    cost = cell_cost(protocol, [], None, [])
    loads = []
    covered = []
    for k in range(1, n + 1):
        mine = grid_cells(sources, methods, seeds, (k, n), points, cost)
        covered += mine
        loads.append(sum(cost(c) for c in mine))
    assert sorted(covered) == sorted(grid_cells(sources, methods, seeds, None, points))
    return loads


def test_readme_table1_array_is_balanced():
    loads = _loads("base2new", TABLE1["sources"], TABLE1["methods"], [1, 2, 3], 24)
    mean = sum(loads) / len(loads)
    assert max(loads) <= 1.25 * mean


def test_fewshot_grid_is_balanced():
    points = parse_sweeps(["data.shots=1,2,4,8,16"]).points()
    methods = ["zeroshot", "coop", "prograd", "linear_probe", "clip_adapter", "maple"]
    loads = _loads("fewshot", ["eurosat", "aid", "patternnet"], methods, [1, 2, 3], 8, points)
    assert max(loads) <= 1.25 * sum(loads) / len(loads)


def test_estimate_follows_epochs_shots_and_method():
    assert run_cost("zeroshot", 1, 16, "fewshot", "patternnet") == run_cost(
        "zeroshot", 50, 1, "fewshot", "patternnet"
    )  # nothing trained: evaluation only
    one, two = (run_cost("coop", 50, k, "fewshot", "patternnet") for k in (1, 2))
    assert two > one
    assert run_cost("cocoop", 50, 1, "fewshot", "patternnet") > one
    # the fewshot preset's own schedule enters through the resolved config
    cost = cell_cost("fewshot", [], None, [])
    pts = parse_sweeps(["data.shots=1,16"]).points()
    assert cost(("patternnet", "coop", 1, pts[0])) == run_cost(
        "coop", 50, 1, "fewshot", "patternnet"
    )
    assert cost(("patternnet", "coop", 1, pts[1])) == run_cost(
        "coop", 200, 16, "fewshot", "patternnet"
    )


@pytest.mark.parametrize("costs, n, want", [([5, 1, 1, 3], 2, [0, 1, 1, 1]), ([1, 1], 3, [0, 1])])
def test_deal_is_longest_first_to_the_least_loaded(costs, n, want):
    assert deal(costs, n) == want
