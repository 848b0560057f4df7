"""Commands that must not pretend: an empty report is an error, printing commands writes nothing."""

from __future__ import annotations

from bimors.cli import main


def test_a_report_over_no_runs_is_an_error_naming_the_folder(tmp_path, capsys):
    (tmp_path / "runs" / "a").mkdir(parents=True)
    assert main(["report", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert f"nothing to report under {tmp_path / 'runs'}" in err and "no results.jsonl" in err
    assert not (tmp_path / "runs" / "report.md").exists()  # no empty files written
    (tmp_path / "runs" / "a" / "results.jsonl").write_text("\n")
    assert main(["report", str(tmp_path / "runs")]) == 2
    assert "1 results.jsonl file(s) hold no readable record" in capsys.readouterr().err


def test_print_commands_writes_nothing(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--ablation", "--print-commands", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert not out.exists()
    assert lines[0] == f"bimors demo --ablation --prepare --out {out}"
    assert lines[-1] == f"bimors report {out / 'runs'}"


def test_fewshot_print_commands_writes_nothing_and_its_first_command_prepares(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--fewshot", "--print-commands", "--out", str(out)]) == 0
    first, run, report = capsys.readouterr().out.splitlines()
    assert not out.exists()
    assert first == f"bimors demo --fewshot --prepare --out {out}"
    assert (
        run.startswith("bimors run --protocol fewshot")
        and report == f"bimors report {out / 'runs'}"
    )
    assert main(["-q", "demo", "--fewshot", "--prepare", "--out", str(out)]) == 0
    assert (out / "models" / "clip-hf-seed1").is_dir() and (out / "data" / "synthetic").is_dir()


def test_each_demo_advertises_a_real_run_of_its_own_protocol_that_parses(tmp_path, capsys):
    import shlex

    from bimors.cli.demo import _print_grid_demo
    from bimors.demo.base2new import REAL_RUN
    from bimors.demo.fewshot import REAL_RUN as FEWSHOT_RUN

    for command, protocol in ((REAL_RUN, "base2new"), (FEWSHOT_RUN, "fewshot")):
        args = [*shlex.split(command)[1:], "--out", str(tmp_path / "runs"), "--list"]
        assert main(["-q", *args]) == 0  # the command a user copies is a valid grid
        rows = capsys.readouterr().out.splitlines()
        assert rows and all(f'"protocol": "{protocol}"' in r for r in rows)
    assert not (tmp_path / "runs").exists()
    _print_grid_demo(
        {
            "markdown": "",
            "report": "r",
            "files": [],
            "records": [],
            "seconds": 0,
            "real_run": FEWSHOT_RUN,
        }
    )
    assert f"    {FEWSHOT_RUN}\n" in capsys.readouterr().out
