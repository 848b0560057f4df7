"""How one number of a table is written, shared by the Markdown and LaTeX renderers.

A renderer supplies its own markup (bold, ±, dagger, minus) through
:class:`Markup`; the decisions (two decimals, no ± for one seed, which cell is
the best, the sign of a difference) are made once here.
"""

from __future__ import annotations

import dataclasses
import math

from bimors.report.aggregate import Stat


@dataclasses.dataclass(frozen=True)
class Markup:
    pm: str
    dagger: str
    minus: str
    missing: str
    strong: str  # format string with one ``{}`` for the text to embolden

    def bold(self, text: str) -> str:
        return self.strong.format(text)


MARKDOWN = Markup(" ± ", "†", "-", "–", "**{}**")
LATEX = Markup(r" $\pm$ ", r"$^\dagger$", "$-$", "--", r"\textbf{{{}}}")


def _is_best(value: float, best: float | None) -> bool:
    return best is not None and round(value, 2) == round(best, 2)


def ours(stat: Stat | None, best: float | None, markup: Markup) -> str:
    """Mean ± std over seeds, bold when the column's best, dagger when a fallback scored it."""
    if stat is None or math.isnan(stat.mean):
        return markup.missing
    text = f"{stat.mean:.2f}"
    if _is_best(stat.mean, best):
        text = markup.bold(text)
    if stat.n > 1 and not math.isnan(stat.std):
        text += f"{markup.pm}{stat.std:.2f}"
    return text + (markup.dagger if stat.fallback else "")


def published(value: float | None, best: float | None, markup: Markup) -> str:
    """A published number, bold when the best published one of its column."""
    if value is None:
        return markup.missing
    text = f"{value:.2f}"
    return markup.bold(text) if _is_best(value, best) else text


def diff(value: float | None, markup: Markup) -> str:
    """Ours minus published with its sign."""
    if value is None:
        return markup.missing
    sign = "+" if value >= 0 else markup.minus
    return f"{sign}{abs(value):.2f}"
