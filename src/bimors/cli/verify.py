"""``bimors verify PATH``: check the checksums of every derived artefact of a run or cache."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify",
        help="check every feature cache, shared-view store and caption store of a run folder "
        "(or under a cache folder, or one store) against its checksums; exit 2 on any damage",
    )
    p.add_argument("path", help="a run folder, a feature cache folder or a caption store file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bimors.engine.integrity import verify

    findings = verify(args.path)
    for finding in findings:
        print(finding.line())
    bad = [f for f in findings if not f.ok]
    print(f"{len(findings)} artefacts checked: {len(bad)} damaged")
    return 2 if bad else 0
