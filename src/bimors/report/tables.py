"""Tables of aggregated results: Markdown (with published numbers), CSV and LaTeX.

A cell scored by a fallback classifier (:attr:`Stat.fallback`) is marked with a
dagger and explained under the table, and the CSV names the fallback.
"""

from __future__ import annotations

import csv
import io
import math

from bimors.report.aggregate import Base2NewRow, Stat, TransferRow
from bimors.report.published import BASE2NEW_AVERAGE, BASE2NEW_DATASETS

DAGGER = "†"


def _fmt(stat: Stat, sep: str = " ± ", mark: str = DAGGER) -> str:
    if math.isnan(stat.mean):
        return "-"
    text = f"{stat.mean:.2f}" if stat.n <= 1 else f"{stat.mean:.2f}{sep}{stat.std:.2f}"
    return text + (mark if stat.fallback else "")


def fallback_note(stats: list[Stat]) -> str:
    """The footnote for dagger-marked cells ('' when none is marked)."""
    used = sorted({f for s in stats if s.fallback for f in s.fallback.split(",")})
    if not used:
        return ""
    return (
        f"\n{DAGGER} scored by a fallback ({', '.join(used)}), not by the method: it has no "
        "weights for these classes (e.g. the linear probe answers unseen classes with "
        "zero-shot CLIP).\n"
    )


def _covers_published(rows: list[Base2NewRow], method: str) -> bool:
    datasets = {r.dataset for r in rows if r.method == method}
    return set(BASE2NEW_DATASETS) <= datasets


def base2new_markdown(rows: list[Base2NewRow], published: bool = False) -> str:
    """Method, dataset, base, new, HM (mean ± std over seeds).

    With ``published``, the ``average`` row of a method that covers the four
    benchmark datasets is followed by the published average and our difference.
    """
    lines = ["| method | dataset | base | new | HM | seeds |", "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r.method} | {r.dataset} | {_fmt(r.base)} | {_fmt(r.new)} | {r.hm:.2f} | "
            f"{max(r.base.n, r.new.n)} |"
        )
        pub = BASE2NEW_AVERAGE.get(r.method)
        if published and pub and r.dataset == "average" and _covers_published(rows, r.method):
            lines.append(
                f"| ↳ published | average | {pub.base:.2f} | {pub.new:.2f} | {pub.hm:.2f} | |"
            )
            lines.append(
                f"| ↳ ours − published | | {r.base.mean - pub.base:+.2f} | "
                f"{r.new.mean - pub.new:+.2f} | {r.hm - pub.hm:+.2f} | |"
            )
    out = "\n".join(lines) + "\n"
    out += fallback_note([s for r in rows for s in (r.base, r.new)])
    if published:
        out += (
            "\nPublished: " + next(iter(BASE2NEW_AVERAGE.values())).source + " "
            f"({', '.join(BASE2NEW_DATASETS)}); shown where our runs cover the same datasets.\n"
        )
    return out


def transfer_markdown(rows: list[TransferRow]) -> str:
    """One table per source dataset: source accuracy, each target, and the target average."""
    out = []
    for source in dict.fromkeys(r.source for r in rows):
        group = [r for r in rows if r.source == source]
        datasets = list(dict.fromkeys(d for r in group for d in r.cells))
        head = " | ".join(f"{d}{' (source)' if d == source else ''}" for d in datasets)
        out.append(f"| method | {head} | target avg |")
        out.append("|---|" + "---:|" * (len(datasets) + 1))
        for r in group:
            cells = " | ".join(_fmt(r.cells[d]) if d in r.cells else "-" for d in datasets)
            out.append(f"| {r.method} | {cells} | {r.target_average:.2f} |")
        out.append("")
        note = fallback_note([s for r in group for s in r.cells.values()])
        if note:
            out += [note.strip("\n"), ""]
    return "\n".join(out)


def records_csv(b2n: list[Base2NewRow], transfer: list[TransferRow]) -> str:
    """Long-format CSV: one line per (protocol, method, train dataset, dataset, split)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        [
            "protocol",
            "method",
            "train_dataset",
            "dataset",
            "split",
            "mean",
            "std",
            "seeds",
            "fallback",
        ]
    )
    for r in b2n:
        for split, s in (("base", r.base), ("new", r.new)):
            w.writerow(
                [
                    "base2new",
                    r.method,
                    r.dataset,
                    r.dataset,
                    split,
                    f"{s.mean:.4f}",
                    f"{s.std:.4f}",
                    s.n,
                    s.fallback,
                ]
            )
        hm_fallback = ",".join(sorted({f for f in (r.base.fallback, r.new.fallback) if f}))
        w.writerow(
            ["base2new", r.method, r.dataset, r.dataset, "hm", f"{r.hm:.4f}", "", "", hm_fallback]
        )
    for r in transfer:
        for d, s in r.cells.items():
            w.writerow(
                [
                    r.protocol,
                    r.method,
                    r.source,
                    d,
                    "all",
                    f"{s.mean:.4f}",
                    f"{s.std:.4f}",
                    s.n,
                    s.fallback,
                ]
            )
    return buf.getvalue()


def _tex(stat: Stat) -> str:
    return _fmt(stat, r" $\pm$ ", r"$^\dagger$")


def base2new_latex(rows: list[Base2NewRow]) -> str:
    """A booktabs tabular of base, new and HM."""
    lines = [
        r"\begin{tabular}{llrrr}",
        r"\toprule",
        r"Method & Dataset & Base & New & HM \\",
        r"\midrule",
    ]
    for r in rows:
        lines.append(f"{r.method} & {r.dataset} & {_tex(r.base)} & {_tex(r.new)} & {r.hm:.2f} \\\\")
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)


def transfer_latex(rows: list[TransferRow]) -> str:
    out = []
    for source in dict.fromkeys(r.source for r in rows):
        group = [r for r in rows if r.source == source]
        datasets = list(dict.fromkeys(d for r in group for d in r.cells))
        out += [
            r"\begin{tabular}{l" + "r" * (len(datasets) + 1) + "}",
            r"\toprule",
            "Method & " + " & ".join(datasets) + r" & Avg \\",
            r"\midrule",
        ]
        for r in group:
            cells = " & ".join(_tex(r.cells[d]) if d in r.cells else "-" for d in datasets)
            out.append(f"{r.method} & {cells} & {r.target_average:.2f} \\\\")
        out += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(out)
