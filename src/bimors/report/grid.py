"""The table model every renderer (Markdown, LaTeX, CSV) prints: the papers' layout.

Base-to-new: datasets as column groups of Base / New / H, the average last.
Cross-dataset and domain generalisation: the source, each target, and the
average over targets. One line per method in the papers' order; each cell
holds our mean ± std over seeds and, where the paper has one, the published
value, so a renderer can print both and the difference. Methods with
published numbers but no runs of ours (ERM, DANN, a baseline not run) still
get a line, so every published number of a table appears.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from bimors.report import published as pub
from bimors.report.aggregate import Base2NewRow, Stat, TransferRow
from bimors.report.names import dataset_label, method_label, order_methods

METRIC_LABELS = {"base": "Base", "new": "New", "hm": "H", "acc": ""}
TITLES = {
    "base2new": "Base-to-new generalisation",
    "cross_dataset": "Cross-dataset transfer",
    "domain_gen": "Domain generalisation",
}


@dataclasses.dataclass
class Cell:
    """Ours (``None`` where we have no run) beside the published number (``None`` if none)."""

    ours: Stat | None = None
    published: float | None = None
    comparable: bool = True  # False: ours covers other datasets than the published average

    @property
    def has_ours(self) -> bool:
        return self.ours is not None and not math.isnan(self.ours.mean)

    @property
    def diff(self) -> float | None:
        """Ours minus published, where both exist and measure the same thing."""
        if not (self.has_ours and self.published is not None and self.comparable):
            return None
        return self.ours.mean - self.published


@dataclasses.dataclass
class Line:
    method: str
    cells: dict[tuple[str, str], Cell]

    @property
    def has_ours(self) -> bool:
        return any(c.has_ours for c in self.cells.values())

    @property
    def has_published(self) -> bool:
        return any(c.published is not None for c in self.cells.values())

    @property
    def label(self) -> str:
        return method_label(self.method)


@dataclasses.dataclass
class Table:
    protocol: str
    groups: list[str]  # datasets (and ``average``) in column order
    metrics: list[str]  # per group: base/new/hm, or acc
    lines: list[Line]
    source: str | None = None  # training dataset of a transfer table
    notes: list[str] = dataclasses.field(default_factory=list)
    setting: str = ""  # what every run of the table shares (see bimors.report.identity)
    labelled: bool = False  # several settings in one report: the title names this one

    @property
    def columns(self) -> list[tuple[str, str]]:
        return [(g, m) for g in self.groups for m in self.metrics]

    @property
    def title(self) -> str:
        base = TITLES.get(self.protocol, self.protocol)
        title = f"{base}, trained on {dataset_label(self.source)}" if self.source else base
        return f"{title} ({self.setting})" if self.labelled and self.setting else title

    def group_label(self, group: str) -> str:
        label = dataset_label(group)
        return f"{label} (source)" if group == self.source else label

    def best(self, column: tuple[str, str]) -> tuple[float | None, float | None]:
        """The highest of our means and of the published values in ``column``."""
        cells = [line.cells[column] for line in self.lines if column in line.cells]
        ours = [c.ours.mean for c in cells if c.has_ours]
        theirs = [c.published for c in cells if c.published is not None]
        return (max(ours) if ours else None, max(theirs) if theirs else None)

    @property
    def stats(self) -> list[Stat]:
        return [c.ours for line in self.lines for c in line.cells.values() if c.has_ours]


def _groups(ours: list[str], paper: tuple[str, ...]) -> list[str]:
    """Paper columns first (all of them once any is ours), then our other datasets."""
    if not any(d in paper for d in ours):
        return list(ours)
    return list(paper) + [d for d in ours if d not in paper]


def _lines(
    methods: list[str],
    groups: list[str],
    metrics: list[str],
    ours: Callable[[str, str, str], Stat | None],
    published: Callable[[str, str, str], float | None] | None,
    comparable: Callable[[str], bool],
) -> list[Line]:
    """``comparable(method)``: our average is over the datasets the published one is over."""
    lines = []
    for method in order_methods(methods):
        cells = {}
        for g in groups:
            for m in metrics:
                cell = Cell(ours(method, g, m), published(method, g, m) if published else None)
                cell.comparable = g != "average" or comparable(method)
                cells[(g, m)] = cell
        lines.append(Line(method, cells))
    return lines


def base2new_table(rows: list[Base2NewRow]) -> Table:
    """Table 1's layout from :func:`~bimors.report.aggregate.base2new_rows`."""
    paper = pub.paper_datasets("base2new")
    datasets = list(dict.fromkeys(r.dataset for r in rows if r.dataset != "average"))
    groups = _groups(datasets, paper)
    by_key = {(r.method, r.dataset): r for r in rows}
    on_paper = any(d in paper for d in datasets)
    if len(groups) > 1:
        groups.append("average")
    metrics = ["base", "new", "hm"]

    def ours(method: str, group: str, metric: str) -> Stat | None:
        row = by_key.get((method, group))
        if row is None:
            return None
        return {"base": row.base, "new": row.new, "hm": row.hm_stat}[metric]

    def published(method: str, group: str, metric: str) -> float | None:
        value = pub.published_value("base2new", method, group, metric)
        return value if group in paper or group == "average" else None

    methods = [r.method for r in rows]
    if on_paper:
        methods += list(pub.published_methods("base2new"))
    covered = {m: {r.dataset for r in rows if r.method == m} - {"average"} for m in methods}
    lines = _lines(
        methods,
        groups,
        metrics,
        ours,
        published if on_paper else None,
        lambda m: covered.get(m, set()) == set(paper),
    )
    return Table("base2new", groups, metrics, lines)


def transfer_tables(rows: list[TransferRow], protocol: str) -> list[Table]:
    """One table per source dataset; the paper's source gets every published line."""
    tables = []
    for source in dict.fromkeys(r.source for r in rows):
        group = [r for r in rows if r.source == source]
        on_paper = source == pub.paper_source(protocol)
        targets = list(dict.fromkeys(d for r in group for d in r.targets))
        paper_targets = tuple(d for d in pub.paper_datasets(protocol) if d != source)
        groups = [source] + (_groups(targets, paper_targets) if on_paper else targets)
        groups.append("average")
        by_method = {r.method: r for r in group}

        def ours(method: str, g: str, metric: str, by_method=by_method) -> Stat | None:
            row = by_method.get(method)
            if row is None:
                return None
            return row.average if g == "average" else row.cells.get(g)

        def published(method: str, g: str, metric: str) -> float | None:
            return pub.published_value(protocol, method, g, metric)

        methods = [r.method for r in group]
        if on_paper:
            methods += list(pub.published_methods(protocol))
        lines = _lines(
            methods,
            groups,
            ["acc"],
            ours,
            published if on_paper else None,
            lambda m, by_method=by_method, paper_targets=paper_targets: (
                m in by_method and set(by_method[m].targets) == set(paper_targets)
            ),
        )
        tables.append(Table(protocol, groups, ["acc"], lines, source))
    return tables
