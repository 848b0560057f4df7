"""The layout holds: layers, no import circles, a small root, old paths, no machine paths."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import grimp
import pytest

import bimors
from bimors._compat import MOVED

SRC = Path(bimors.__file__).parent
TEXT = (".py", ".md", ".toml", ".yaml", ".yml", ".cfg", ".txt", ".sh", "")
TEXT = (".py", ".md", ".toml", ".yaml", ".yml", ".cfg", ".txt", ".sh", "")
REPO = SRC.parents[1]


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    adj = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in sorted(graph.modules)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    for root in adj:
        if root in index:
            continue
        work = [(root, iter(adj[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(adj[w])))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_no_import_circle_anywhere():
    """Every import counts, lazy (inside a function) and type-only ones too."""
    assert _cycles(grimp.build_graph("bimors")) == []


def test_the_cycle_finder_finds_a_circle(tmp_path, monkeypatch):
    pkg = tmp_path / "circlepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from circlepkg import b\n")
    (pkg / "b.py").write_text("def f():\n    from circlepkg import a\n")
    (pkg / "c.py").write_text("from circlepkg import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _cycles(grimp.build_graph("circlepkg", cache_dir=None)) == [
        ["circlepkg.a", "circlepkg.b"]
    ]


def test_layers_contract_holds():
    """The import-linter contract in pyproject.toml (also run by .ci/run as lint-imports)."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from importlinter.cli import lint_imports_command; lint_imports_command()",
            "--no-cache",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "1 kept, 0 broken" in done.stdout


def test_at_most_six_loose_modules_at_the_package_root():
    loose = sorted(p.name for p in SRC.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert len(loose) <= 6, loose


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_import_paths_give_the_moved_module(old):
    new = importlib.import_module(MOVED[old])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a supported path, so no warning either
        sys.modules.pop(old, None)
        module = importlib.import_module(old)
    assert module is new
    assert module.__spec__.name == MOVED[old]  # the alias did not rename the real module


def test_old_public_names_still_import():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from bimors.experiment import CaptionStores, run_plan
        from bimors.predict import Predictor
        from bimors.run_config import DataConfig, RunConfig, TrainConfig, resolve_config

        from bimors.demo import NOTE, run_demo
    from bimors.run.predict import Predictor as NewPredictor

    assert Predictor is NewPredictor
    assert callable(run_demo) and NOTE and callable(run_plan) and callable(resolve_config)
    assert RunConfig().data == DataConfig() and RunConfig().train == TrainConfig()
    assert CaptionStores.__module__ == "bimors.captions.stores"


#: Machine folders that must not appear in tracked files (built here so this file holds none).
MARKERS = tuple(f"/{folder}/" for folder in ("work", "root", "home"))


def test_no_absolute_machine_path_in_the_repository():
    files = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=False
    ).stdout.split()
    if not files:
        pytest.skip("not a git checkout")
    bad = []
    for name in files:
        path = REPO / name
        if path.suffix not in TEXT or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for marker in MARKERS:
            if marker in text:
                bad.append(f"{name}: {marker}")
    assert bad == []
