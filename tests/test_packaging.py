"""The dev extra installs every optional library the test suite exercises.

CI installs ``.[demo,dev]`` (the README's Quick start): an extra whose library only the tests
import (``hub``'s pyarrow) must also be in ``dev``, or CI fails on an import the developer's
own environment happened to have.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+; CI runs 3.11

REPO = Path(__file__).resolve().parents[1]


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~ \[;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_dev_extra_holds_every_other_extra():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    dev = _names(extras["dev"])
    missing = {
        extra: sorted(_names(reqs) - dev) for extra, reqs in extras.items() if extra != "dev"
    }
    assert not any(missing.values()), f"add to the dev extra of pyproject.toml: {missing}"
