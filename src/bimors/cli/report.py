"""``bimors report RUNS_DIR``: tables (Markdown, CSV, LaTeX) and plots of every run below."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="aggregate run records into tables and plots")
    p.add_argument("runs", type=Path, help="folder of run folders (searched recursively)")
    p.add_argument("--out", type=Path, help="where to write the report (default: RUNS)")
    p.add_argument(
        "--no-per-run",
        action="store_true",
        help="skip the per-run confusion matrices and per-class accuracies (faster)",
    )
    p.add_argument(
        "--gallery",
        action="store_true",
        help="also write each finished run's error gallery (RUN/gallery.html; re-scores its "
        "test images, so it needs the data, the models and, for caption methods, the stores)",
    )
    p.add_argument("--device", default="auto", help="with --gallery: where to re-score")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bimors.report.build import build_report

    report = build_report(args.runs, args.out, per_run=not args.no_per_run)
    print(report["markdown"])
    for f in report["files"]:
        print(f"wrote {f}")
    if args.gallery:
        from bimors.report.gallery import write_gallery
        from bimors.run.trained import load_trained

        runs = sorted({Path(p).parent for p in args.runs.rglob("checkpoint.pt")})
        for run_dir in runs:
            print(f"wrote {write_gallery(load_trained(run_dir, args.device))}")
    if report["per_run"]:
        print(f"wrote {len(report['per_run'])} per-run files under {args.out or args.runs}/per_run")
    return 0
