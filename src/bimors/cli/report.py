"""``bimors report RUNS_DIR``: tables (Markdown, CSV, LaTeX) and plots of every run below."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="aggregate run records into tables and plots")
    p.add_argument("runs", type=Path, help="folder of run folders (searched recursively)")
    p.add_argument("--out", type=Path, help="where to write the report (default: RUNS)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bimors.report.build import build_report

    report = build_report(args.runs, args.out)
    print(report["markdown"])
    for f in report["files"]:
        print(f"wrote {f}")
    return 0
