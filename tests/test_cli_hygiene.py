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
