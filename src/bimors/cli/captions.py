"""``bimors captions show|export|verify|upgrade STORE``: read what the captioner saw."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("captions", help="show, export or verify the captions of a caption store")
    verbs = p.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True

    show = verbs.add_parser("show", help="print provenance and the caption of each image")
    show.add_argument("store", type=Path)
    show.add_argument("relpaths", nargs="*", help="only these images (default: all)")
    show.add_argument("--limit", type=int, help="print at most this many captions")
    show.add_argument("--failures", action="store_true", help="print only the failed images")
    show.set_defaults(func=run_show)

    export = verbs.add_parser("export", help="write relpath, caption, sha256 (and errors)")
    export.add_argument("store", type=Path)
    export.add_argument("out", type=Path, help="output file, .jsonl or .csv")
    export.add_argument("--format", choices=["jsonl", "csv"], help="default: from OUT's suffix")
    export.set_defaults(func=run_export)

    verify = verbs.add_parser(
        "verify",
        help="check SQLite's integrity_check and every row's checksum (exit 2 on damage); "
        "with --root, also re-hash the images and list those changed since they were captioned",
    )
    verify.add_argument("store", type=Path)
    verify.add_argument("--root", type=Path, help="the dataset's image root (re-hash the images)")
    verify.set_defaults(func=run_verify)

    upgrade = verbs.add_parser(
        "upgrade",
        help="add the row checksums of format 2 to a store made by an older bimors (format 1)",
    )
    upgrade.add_argument("store", type=Path)
    upgrade.set_defaults(func=run_upgrade)


def run_show(args: argparse.Namespace) -> int:
    from bimors.captions.store import CaptionStore

    with CaptionStore(args.store, readonly=True) as store:
        failures = store.failures()
        if not args.relpaths:
            part = f"; {store.coverage()}" if store.coverage() else ""
            print(f"# {store.path}: {len(store)} captions, {len(failures)} failures{part}")
            print("# " + json.dumps(store.provenance, sort_keys=True))
        if args.failures:
            for relpath, error in failures.items():
                print(f"{relpath}\tFAILED\t{error}")
            return 0
        if args.relpaths:
            missing = 0
            for relpath in args.relpaths:
                try:
                    print(f"{relpath}\t{store.get(relpath).caption}")
                except KeyError:
                    missing += 1
                    state = f"FAILED: {failures[relpath]}" if relpath in failures else "MISSING"
                    print(f"{relpath}\t{state}")
            return 1 if missing else 0
        for i, rec in enumerate(store):
            if args.limit is not None and i >= args.limit:
                break
            print(f"{rec.relpath}\t{rec.caption}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from bimors.captions.export import export_captions
    from bimors.captions.store import CaptionStore

    with CaptionStore(args.store, readonly=True) as store:
        n = export_captions(store, args.out, args.format)
    print(f"{n} rows written to {args.out}")
    return 0


def run_upgrade(args: argparse.Namespace) -> int:
    from bimors.captions.store import upgrade

    n = upgrade(args.store)
    if n == 0:
        print(f"{args.store} already has checksums (format 2); nothing to do")
        return 0
    print(
        f"{args.store}: checksums added to {n} rows. They vouch for the rows as they are now; "
        f"check the images against them with: bimors captions verify {args.store} --root DIR"
    )
    return 0


def run_verify(args: argparse.Namespace) -> int:
    import logging

    from bimors.captions.store import CaptionStore
    from bimors.captions.verify import check_hashes
    from bimors.engine.integrity import verify_store

    finding = verify_store(args.store)
    print(finding.line())
    if not finding.ok:
        return 2
    if args.root is None:
        return 0
    progress = logging.getLogger().getEffectiveLevel() <= logging.INFO
    with CaptionStore(args.store, readonly=True) as store:
        store.check_intact()
        report = check_hashes(args.root, store.hashes(), progress=progress)
        fill = store.fill_command()
        coverage = store.coverage()
    for relpath in report.changed:
        print(f"{relpath}\tCHANGED")
    for relpath in report.unreadable:
        print(f"{relpath}\tUNREADABLE")
    print(
        f"{report.checked} images checked: {len(report.changed)} changed, "
        f"{len(report.unreadable)} missing or unreadable" + (f"; {coverage}" if coverage else "")
    )
    if not report.ok:
        print(f"re-caption the changed images with: {fill} --verify")
        return 1
    return 0
