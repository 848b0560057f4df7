"""The ``bimors`` command: parses arguments, builds objects, runs them, prints.

Each sub-command lives in its own module under ``bimors.cli`` exposing
``add_parser(subparsers)``, which registers the parser and sets ``func``.
Errors the user can fix (:class:`~bimors.core.errors.BimorsError`) are printed
without a traceback and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from bimors import __version__
from bimors.core.errors import BimorsError
from bimors.core.stop import Stopped

#: Sub-command modules, in the order ``bimors --help`` lists them.
COMMANDS = (
    "listing",
    "tiny_models",
    "demo",
    "data",
    "caption",
    "captions",
    "train",
    "eval",
    "run",
    "report",
    "gallery",
    "predict",
    "export",
    "bench",
    "verify",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bimors",
        description="BiMoRS and CLIP prompt-learning baselines for few-shot remote-sensing scenes.",
    )
    parser.add_argument("--version", action="version", version=f"bimors {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="log warnings only, no progress bars"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"bimors.cli.{name}").add_parser(sub)
    return parser


def _setup_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    # Third-party libraries are chatty at INFO; keep their warnings only.
    for noisy in ("transformers", "httpx", "huggingface_hub", "open_clip", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_warning()
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bimors`` console script."""
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose, args.quiet)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    finished = False
    try:
        code = int(args.func(args) or 0)
        finished = True
        return code
    except BimorsError as err:
        print(f"bimors: error: {err}", file=sys.stderr)
        return 2
    except Stopped as stop:
        print(f"bimors: {stop}", file=sys.stderr)
        return stop.exit_code
    except KeyboardInterrupt:
        print("bimors: interrupted", file=sys.stderr)
        return 130
    finally:
        _close_process_group(wait=finished)


def _close_process_group(wait: bool) -> None:
    """Leave a multi-process group cleanly (gloo aborts at exit otherwise).

    Only a finished command waits for the other processes: a process that
    failed alone must exit at once, so that the launcher sees the failure and
    stops the others, instead of waiting at a barrier they never reach.
    """
    import torch.distributed as td

    if td.is_available() and td.is_initialized():
        if wait:
            td.barrier()
        td.destroy_process_group()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
