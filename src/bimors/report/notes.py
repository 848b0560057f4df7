"""What each table's numbers mean, and why ours differ from the published ones by design.

Every table states what its ``±`` is and how many seeds and datasets stand
behind its averages, computed from the cells themselves so the text cannot
drift from the numbers. :data:`CAVEATS` is the honest-comparison text printed
beside the published figures (and mirrored in the README).
"""

from __future__ import annotations

from collections import defaultdict

from bimors.report import published as pub
from bimors.report.grid import Table

DAGGER = "†"

CAVEATS = (
    "Reading ours against the published numbers: (1) the official APPLeNet and BiMoRS "
    "code select the checkpoint on the test set, while our runs never look at test data "
    "(the last epoch by default, or validation with train.selection=val), so expect ours "
    "somewhat lower for those methods; (2) MLRSNet has no published split file, so its "
    "split is our own seeded one; (3) the few-shot training images are our own seeded "
    "draw unless a run chooses the Dassl-compatible sampler (data.fewshot_sampler=dassl, "
    "where available; each run's config records which), so even the same seed trains on "
    "other images than the papers did."
)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _seed_counts(table: Table) -> str:
    counts = sorted(
        {c.ours.n for line in table.lines for (g, _), c in line.cells.items() if c.has_ours}
        if table.lines
        else set()
    )
    if not counts:
        return ""
    span = _plural(counts[0], "seed") if len(counts) == 1 else f"{counts[0]}-{counts[-1]} seeds"
    return f"Cells: mean ± sample std over seeds ({span} per cell; one seed has no ±)."


def _average_note(table: Table) -> str:
    if "average" not in table.groups:
        return ""
    metric = table.metrics[0]
    shape: dict[tuple[int, int], list[str]] = defaultdict(list)
    for line in table.lines:
        cell = line.cells.get(("average", metric))
        if cell is not None and cell.has_ours:
            shape[(cell.ours.datasets, cell.ours.n)].append(line.label)
    if not shape:
        return ""
    what = "datasets" if table.protocol == "base2new" else "targets (the source is not averaged)"
    text = (
        f"Average: mean over the {what} of the per-dataset means; its ± is the std over seeds "
        "of the per-seed average (seeds every dataset has), not a spread across datasets."
    )
    if table.protocol == "base2new":
        text += " Its H is the harmonic mean of the average Base and New; H's ± is over seeds."
    parts = [
        f"{', '.join(names)}: {_plural(d, 'dataset')} × {_plural(n, 'seed')}"
        for (d, n), names in shape.items()
    ]
    if len(shape) == 1:
        (d, n), _ = next(iter(shape.items()))
        return f"{text} Every average is over {_plural(d, 'dataset')} × {_plural(n, 'seed')}."
    return f"{text} Counts: {'; '.join(parts)}."


def _published_note(table: Table) -> str:
    if not any(line.has_published for line in table.lines):
        return ""
    text = (
        f"Published: {pub.source()} Δ = ours − published; no Δ where our average is over "
        "other datasets than the published one."
    )
    if table.protocol != "base2new":
        text += f" Average: {pub.DERIVED_AVERAGE_NOTE}."
    return text


def _fallback_note(table: Table) -> str:
    used = sorted({f for s in table.stats if s.fallback for f in s.fallback.split(",")})
    if not used:
        return ""
    return (
        f"{DAGGER} scored by a fallback ({', '.join(used)}), not by the method: it has no "
        "weights for these classes (e.g. the linear probe answers unseen classes with "
        "zero-shot CLIP)."
    )


def table_notes(table: Table) -> list[str]:
    """The footnotes of ``table``, plain text (renderers escape them)."""
    compared = any(line.has_published for line in table.lines)
    notes = [
        _seed_counts(table),
        _average_note(table),
        "Bold: the best of our runs in each column"
        + (" (and the best published value in published lines)." if compared else "."),
        _published_note(table),
        _fallback_note(table),
    ]
    only = [line.label for line in table.lines if line.has_published and not line.has_ours]
    if only:
        notes.append(f"Published only (no runs of ours): {', '.join(only)}.")
    return [n for n in notes if n]
