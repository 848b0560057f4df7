"""``bimors data list|download|verify``: datasets, their sources, and checks of a local copy."""

from __future__ import annotations

import argparse
import logging
import sys

#: Problems of one kind printed by ``data verify`` before the rest are counted.
SHOWN = 10


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="list, download and verify datasets")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    dsub.required = True

    ls = dsub.add_parser("list", help="datasets, classes, sizes, and their status under a folder")
    ls.add_argument("name", nargs="?", help="show one dataset in full (source, licence, classes)")
    ls.add_argument(
        "--root", help="a data folder holding one folder per dataset (PatternNet/, RSICD/, ...)"
    )
    ls.set_defaults(func=run_list)

    dl = dsub.add_parser("download", help="download a dataset where a public source exists")
    dl.add_argument("name")
    dl.add_argument("--root", required=True, help="the dataset folder to download into")
    dl.add_argument(
        "--mirror", action="append", default=[], help="an extra URL for the archive (tried first)"
    )
    dl.add_argument("--no-extract", action="store_true", help="keep the archive packed")
    dl.add_argument(
        "--source",
        choices=("archive", "hub"),
        help="archive (default where one exists) or hub (the Hugging Face dataset repository)",
    )
    dl.add_argument("--hub-path", help="a local copy of the Hugging Face repository (offline)")
    dl.set_defaults(func=run_download)

    vf = dsub.add_parser("verify", help="check layout, counts and that every image decodes")
    vf.add_argument("name")
    vf.add_argument("--root", required=True, help="the dataset folder")
    vf.add_argument("--split-file", help="an explicit split file (published format)")
    vf.add_argument("--split-seed", type=int, default=0, help="seed of a seeded split")
    vf.add_argument("--exclude", help="file of relpaths to leave out on purpose")
    vf.add_argument(
        "--custom-split",
        action="store_true",
        help="check --split-file for a dataset with a published split without its SHA-256 pin",
    )
    vf.add_argument("--no-decode", action="store_true", help="skip decoding the images")
    vf.add_argument("--no-fetch", action="store_true", help="never fetch the published split")
    vf.add_argument("--workers", type=int, default=4, help="decoding threads")
    vf.add_argument(
        "--all",
        dest="show_all",
        action="store_true",
        help=f"print every problem (default: the first {SHOWN} of each kind, then a count)",
    )
    vf.add_argument(
        "--write-exclude", help="write the missing/undecodable images to this exclude file"
    )
    vf.set_defaults(func=run_verify)


def _progress() -> bool:
    return logging.getLogger().getEffectiveLevel() <= logging.INFO and sys.stderr.isatty()


def problem_lines(problems: list, shown: int | None) -> list[str]:
    """Each problem, but at most ``shown`` of one kind, then one line counting the rest.

    A partial copy can miss tens of thousands of files; listing each buries the
    summary. The kinds (with counts) are repeated at the end, most frequent first.
    """
    import re
    from collections import Counter

    def kind(p) -> str:
        issue = re.sub(r"\d+", "N", re.sub(r"\([^)]*\)", "(...)", p.issue))
        return f"{p.severity}: {issue[:60]}"

    seen: Counter[str] = Counter()
    lines = []
    for p in problems:
        seen[kind(p)] += 1
        if shown is None or seen[kind(p)] <= shown:
            lines.append(str(p))
    hidden = {k: n - shown for k, n in seen.items() if shown is not None and n > shown}
    for k, n in hidden.items():
        lines.append(f"... and {n} more {k!r} (pass --all to list them, --write-exclude FILE)")
    if len(seen) > 1 or hidden:
        lines.append("problems by kind: " + "; ".join(f"{n} x {k}" for k, n in seen.most_common()))
    return lines


def run_list(args: argparse.Namespace) -> int:
    from bimors.data import DATASETS
    from bimors.data.catalog import dataset_status, describe, split_kind

    if args.name:
        cls = DATASETS.get(args.name)
        for field, text in describe(cls):
            print(f"{field + ':':15s}{text}")
        if cls.classes:
            print(f"classes ({len(cls.classes)}, label order; reference -> readable):")
            ref = cls.prompt_names(list(cls.classes), "reference")
            read = cls.prompt_names(list(cls.classes), "readable")
            for i, (c, r, h) in enumerate(zip(cls.classes, ref, read, strict=True)):
                print(f"  {i:3d}  {c:28s} {r!r} -> {h!r}")
        if args.root:
            st = dataset_status(cls, args.root)
            print(f"status:        {st.state} {st.path or ''} {st.detail}".rstrip())
        return 0
    header = f"{'name':13s} {'classes':>7s} {'images':>7s}  {'split':30s} {'download':8s}"
    if args.root:
        header += "  status"
    print(header)
    for name in DATASETS.names():
        cls = DATASETS.get(name)
        n_cls = str(len(cls.classes)) if cls.classes else "-"
        n_img = str(cls.info.images) if cls.info.images else "-"
        how = (
            "auto"
            if cls.info.archive
            else "hub"
            if cls.info.hub
            else "manual"
            if cls.folder
            else "-"
        )
        line = f"{name:13s} {n_cls:>7s} {n_img:>7s}  {split_kind(cls):30s} {how:8s}"
        if args.root:
            st = dataset_status(cls, args.root)
            extra = f" ({st.images} images, {st.split})" if st.state == "ready" else ""
            detail = f": {st.detail}" if st.detail and st.state == "incomplete" else ""
            line += f"  {st.state}{extra}{detail}"
        print(line)
    return 0


def run_download(args: argparse.Namespace) -> int:
    from bimors.data import DATASETS
    from bimors.data.obtain import obtain

    cls = DATASETS.get(args.name)
    if not cls.folder:
        print(f"{args.name} is your own data: nothing to download", file=sys.stderr)
        return 1
    out = obtain(
        cls, args.root, args.mirror, not args.no_extract, _progress(), args.source, args.hub_path
    )
    if out.split_file:
        print(f"published split: {out.split_file} (SHA-256 checked)")
    if out.archive:
        print(f"archive: {out.archive} (checksum checked)")
    if out.hub:
        print(f"images from {cls.info.hub.repo}: {out.hub}")
    for problem in out.layout_problems:
        print(f"layout: {problem}", file=sys.stderr)
    if out.manual:
        print(
            f"{cls.info.title} needs a manual step: {out.manual}.\n"
            f"Then check it with: bimors data verify {cls.name} --root {args.root}",
            file=sys.stderr,
        )
        return 1
    return 1 if out.layout_problems else 0


def run_verify(args: argparse.Namespace) -> int:
    from bimors.core import atomic
    from bimors.data import build_dataset
    from bimors.data.verify import verify_dataset

    ds = build_dataset(
        args.name,
        args.root,
        split_file=args.split_file,
        split_seed=args.split_seed,
        exclude=args.exclude,
        fetch=not args.no_fetch,
        check_split=not args.custom_split,
    )
    report = verify_dataset(
        ds, decode=not args.no_decode, workers=args.workers, progress=_progress()
    )
    for line in problem_lines(report.problems, None if args.show_all else SHOWN):
        print(line)
    counts = ", ".join(f"{k} {v}" for k, v in report.counts.items()) or "no split"
    print(
        f"{ds.name}: {len(report.errors)} error(s), {len(report.warnings)} warning(s); "
        f"split {report.split_file or '-'} ({counts}); decoded {report.checked} image(s); "
        f"excluded {len(report.excluded)}"
        + (f", dangling links left out {len(report.dangling)}" if report.dangling else "")
    )
    if args.write_exclude:
        bad = report.bad_images()
        atomic.write_text(args.write_exclude, "".join(r + "\n" for r in bad))
        print(f"wrote {len(bad)} relpath(s) to {args.write_exclude}; pass it as --exclude")
    return 0 if report.ok else 1
