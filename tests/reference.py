"""Where the reference copies of the published split files are, if this checkout has them.

``$BIMORS_REFERENCE_SPLITS`` (the folders the package itself reads), else the
``shared/reference/applenet_splits`` folder beside the repository (or one level
further up, for a git worktree). None where no copy exists: the tests that
need one are skipped. No machine's absolute path is named here.
"""

from __future__ import annotations

from pathlib import Path

from bimors.data.published import reference_dirs

REPO = Path(__file__).resolve().parents[1]


def reference_splits() -> Path | None:
    candidates = [
        *reference_dirs(),
        REPO.parent / "shared" / "reference" / "applenet_splits",
        REPO.parent.parent / "shared" / "reference" / "applenet_splits",
    ]
    return next((c for c in candidates if (c / "patternnet.json").is_file()), None)
