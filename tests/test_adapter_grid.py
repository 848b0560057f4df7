"""Issue 22's check: a base-to-new grid over the six cache, closed-form and adapter
methods runs in one command on the synthetic scenes and tiny CLIP, skips finished
cells on a rerun, and reports each method under its paper label."""

from __future__ import annotations

from bimors.cli import main
from tests.test_experiments import env  # noqa: F401  (the session fixture of the CLI runs)

SIX = ("tip_adapter", "tip_adapter_f", "lp_pp", "clap", "taskres", "clip_lora")
LABELS = ("Tip-Adapter", "Tip-Adapter-F", "LP++", "CLAP", "TaskRes", "CLIP-LoRA")


def test_base_to_new_grid_of_the_six_runs_resumes_and_reports(env, tmp_path, capsys):  # noqa: F811
    runs = tmp_path / "runs"
    argv = [
        "-q", "run", "--protocol", "base2new", "--method", *SIX, "--dataset", "synthetic",
        "--seeds", "1", "--root", str(env["scenes"]), "--out", str(runs), *env["sets"],
    ]  # fmt: skip
    assert main(argv) == 0
    cells = {m: runs / "base2new" / "synthetic" / m / "seed1" for m in SIX}
    stamps = {}
    for m, cell in cells.items():
        assert (cell / "results.jsonl").is_file(), m
        stamps[m] = (cell / "checkpoint.pt").stat().st_mtime_ns
    capsys.readouterr()
    assert main(argv) == 0  # finished cells are skipped, not refitted
    for m, cell in cells.items():
        assert (cell / "checkpoint.pt").stat().st_mtime_ns == stamps[m], m
    assert main(["-q", "report", str(runs)]) == 0
    report = capsys.readouterr().out + (runs / "report.md").read_text()
    for label in LABELS:
        assert f"| {label} | " in report or f"| {label} †" in report, label
