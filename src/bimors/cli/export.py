"""``bimors export RUN DIR`` and ``bimors push RUN --repo ID``: share a trained run on the hub."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="write a finished run as a Hugging Face model repository folder"
    )
    p.add_argument("run_dir", help="a finished run folder")
    p.add_argument("out", help="the folder to write (new or empty)")
    p.add_argument("--allow-other-version", action="store_true")
    p.set_defaults(func=run_export)
    q = sub.add_parser("push", help="export a finished run and upload it to the Hugging Face hub")
    q.add_argument("run_dir", help="a finished run folder")
    q.add_argument("--repo", required=True, help="the model repository id, e.g. USER/NAME")
    q.add_argument("--private", action="store_true", help="create the repository as private")
    q.add_argument("--allow-other-version", action="store_true")
    q.set_defaults(func=run_push)


def run_export(args: argparse.Namespace) -> int:
    from bimors.run.export import export_run

    out = export_run(args.run_dir, args.out, args.allow_other_version)
    print(f"exported {args.run_dir} to {out} (model.safetensors, config.json, README.md)")
    print(f"load it with: bimors predict {out} IMAGE, or Predictor.from_pretrained({str(out)!r})")
    return 0


def run_push(args: argparse.Namespace) -> int:
    from bimors.run.export import push_run

    url = push_run(args.run_dir, args.repo, args.private, args.allow_other_version)
    print(f"pushed {args.run_dir} to {url}")
    print(f"load it with: bimors predict hf:{args.repo} IMAGE")
    return 0
