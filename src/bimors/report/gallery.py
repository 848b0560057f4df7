"""An error gallery per run: which classes get confused, shown with the images themselves.

A table says that 12% of ``dense_residential`` went to ``medium_residential``;
only the images say whether the labels, the classes or the model are at fault.
``write_gallery`` re-scores a finished run on its test split(s) and writes one
self-contained HTML page (thumbnails inlined as base64 JPEG, no external file
or script): the most frequent confusions, each with its misclassified images
(most confident mistakes first), their true and predicted class, the score
margin ``p(predicted) - p(true)``, and, for a method that reads captions, the
caption it read; then per-class accuracy in a table sortable by any column.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from bimors.captions.stores import CaptionStores
from bimors.core import atomic
from bimors.data.images import open_rgb
from bimors.engine.data import TaskData
from bimors.engine.precision import autocast
from bimors.methods.base import Method
from bimors.run.evaluation import run_specs
from bimors.run.experiment import task_data
from bimors.run.trained import TrainedRun

logger = logging.getLogger(__name__)

THUMB = 112  # pixels, the longer side


@dataclasses.dataclass
class Scored:
    """One test image: its file, true and predicted label, class probabilities, caption."""

    path: Path
    relpath: str
    true: int
    pred: int
    probs: list[float]
    caption: str | None = None

    @property
    def margin(self) -> float:
        """``p(predicted) - p(true)``: 0 for a correct image, up to 1 for a confident mistake."""
        return self.probs[self.pred] - self.probs[self.true]


@torch.no_grad()
def score(method: Method, data: TaskData, precision: str = "fp32", batch_size: int = 64):
    """Class probabilities of every image of ``data`` (the plain path: encoder on every batch)."""
    if method.classnames != data.classnames:
        method.set_classnames(data.classnames)
    method.eval()
    device = method.backbone.device
    out = []
    for batch in DataLoader(data.images, batch_size=batch_size, shuffle=False):
        caps = data.captions[batch["index"]].to(device) if data.captions is not None else None
        with autocast(device, precision):
            logits = method(method.image_features(batch["pixels"].to(device)), caps)
        out.append(logits.float().softmax(dim=-1).cpu())
    return torch.cat(out) if out else torch.zeros(0, len(data.classnames))


def confusions(items: Sequence[Scored]) -> list[tuple[tuple[int, int], int]]:
    """``((true, predicted), count)`` of the mistakes, most frequent first (ties by label)."""
    counts = Counter((s.true, s.pred) for s in items if s.true != s.pred)
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def _thumbnail(path: Path) -> str:
    image = open_rgb(path)
    image.thumbnail((THUMB, THUMB))
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


_STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px} h2{font-size:18px;margin-top:28px} h3{font-size:15px;margin:18px 0 6px}
.meta{color:#555;font-size:13px} .grid{display:flex;flex-wrap:wrap;gap:10px}
figure{margin:0;width:132px;font-size:11px;border:1px solid #ddd;border-radius:4px;padding:4px}
figure img{width:100%;height:auto;display:block;image-rendering:auto}
figcaption{margin-top:3px;line-height:1.3;word-wrap:break-word}
.cap{color:#555;font-style:italic} .m{font-weight:600;color:#b00}
table{border-collapse:collapse;font-size:13px} th,td{border:1px solid #ccc;padding:3px 8px}
th{background:#f2f2f2;cursor:pointer;user-select:none} td.n{text-align:right}
"""

_SORT = """
document.querySelectorAll('table.sortable th').forEach(function(th, col){
  th.addEventListener('click', function(){
    var table = th.closest('table'), body = table.tBodies[0];
    var rows = Array.from(body.rows), asc = th.dataset.asc !== '1';
    rows.sort(function(a, b){
      var x = a.cells[col].dataset.v || a.cells[col].textContent;
      var y = b.cells[col].dataset.v || b.cells[col].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return asc ? c : -c;
    });
    rows.forEach(function(r){ body.appendChild(r); });
    table.querySelectorAll('th').forEach(function(h){ h.dataset.asc = ''; });
    th.dataset.asc = asc ? '1' : '0';
  });
});
"""


def gallery_html(
    title: str,
    meta_line: str,
    classnames: Sequence[str],
    items: Sequence[Scored],
    top_pairs: int = 12,
    per_pair: int = 8,
) -> str:
    """The page for one split: confusions with thumbnails, then per-class accuracy."""
    esc = html.escape
    wrong = sum(s.true != s.pred for s in items)
    parts = [
        f"<h2>{esc(title)}</h2>",
        f"<p class='meta'>{len(items)} test images, {wrong} misclassified "
        f"({100.0 * (len(items) - wrong) / max(len(items), 1):.2f}% accuracy). "
        f"{esc(meta_line)}</p>",
    ]
    pairs = confusions(items)
    if not pairs:
        parts.append("<p>No mistakes on this split.</p>")
    for (t, p), count in pairs[:top_pairs]:
        shown = sorted(
            (s for s in items if s.true == t and s.pred == p), key=lambda s: (-s.margin, s.relpath)
        )[:per_pair]
        parts.append(
            f"<h3>{esc(classnames[t])} &rarr; {esc(classnames[p])}: {count} image"
            f"{'s' if count != 1 else ''}</h3><div class='grid'>"
        )
        for s in shown:
            cap = (
                f"<br><span class='cap'>&ldquo;{esc(s.caption)}&rdquo;</span>" if s.caption else ""
            )
            parts.append(
                f"<figure><img src='{_thumbnail(s.path)}' alt='{esc(s.relpath)}' "
                f"title='{esc(s.relpath)}'><figcaption>true: {esc(classnames[s.true])}<br>"
                f"predicted: {esc(classnames[s.pred])}<br><span class='m'>margin "
                f"{s.margin:.2f}</span> (p {s.probs[s.pred]:.2f} vs {s.probs[s.true]:.2f})"
                f"{cap}</figcaption></figure>"
            )
        parts.append("</div>")
    if len(pairs) > top_pairs:
        rest = sum(c for _, c in pairs[top_pairs:])
        parts.append(f"<p class='meta'>{len(pairs) - top_pairs} rarer confusions ({rest} images) "
                     "not shown.</p>")  # fmt: skip
    parts.append(
        "<h3>Per-class accuracy (click a column to sort)</h3><table class='sortable'><thead><tr>"
        "<th>class</th><th>correct</th><th>total</th><th>accuracy (%)</th>"
        "<th>most often predicted instead</th></tr></thead><tbody>"
    )
    for c, name in enumerate(classnames):
        mine = [s for s in items if s.true == c]
        ok = sum(s.pred == c for s in mine)
        others = Counter(s.pred for s in mine if s.pred != c).most_common(1)
        instead = f"{classnames[others[0][0]]} ({others[0][1]})" if others else ""
        acc = 100.0 * ok / len(mine) if mine else float("nan")
        parts.append(
            f"<tr><td>{esc(name)}</td><td class='n'>{ok}</td><td class='n'>{len(mine)}</td>"
            f"<td class='n' data-v='{acc:.4f}'>{acc:.2f}</td><td>{esc(instead)}</td></tr>"
        )
    parts.append("</tbody></table>")
    return "\n".join(parts)


def page(title: str, sections: Sequence[str]) -> str:
    """A complete, self-contained HTML document."""
    body = "\n".join(sections)
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}"
        f"</title><style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>\n{body}\n"
        f"<script>{_SORT}</script></body></html>\n"
    )


def write_gallery(
    trained: TrainedRun,
    out: str | Path | None = None,
    splits: list[str] | None = None,
    stores: dict[str, str] | None = None,
    top_pairs: int = 12,
    per_pair: int = 8,
) -> Path:
    """Score ``trained`` on its test split(s); write the page (default ``<run>/gallery.html``)."""
    cfg, method = trained.cfg, trained.method
    specs = run_specs(trained, splits=splits)
    caption_stores = None
    if method.uses_captions:  # the stores the run recorded, unless given here
        recorded = CaptionStores.recorded(trained.run.path) if trained.run is not None else {}
        caption_stores = CaptionStores(cfg, {**recorded, **(stores or {})})
    sections = []
    try:
        for spec in specs:
            store = caption_stores.get(spec.dataset) if caption_stores else None
            data = task_data(
                spec.dataset, spec.task, trained.backbone, False, store, cfg.data.classnames
            )
            probs = score(method, data, cfg.train.precision)
            items = []
            for sample, row in zip(spec.task.samples, probs.tolist(), strict=True):
                caption = store.get(sample.relpath).caption if store is not None else None
                pred = max(range(len(row)), key=row.__getitem__)
                items.append(
                    Scored(
                        spec.dataset.image_root / sample.relpath,
                        sample.relpath,
                        sample.label,
                        pred,
                        row,
                        caption,
                    )
                )
            backbone = f"{cfg.backbone.adapter}:{cfg.backbone.model}"
            sections.append(
                gallery_html(
                    f"{spec.dataset.name}, {spec.split} classes",
                    f"Method {cfg.method}, {cfg.data.shots} shots, seed {cfg.train.seed}, "
                    f"backbone {backbone}.",
                    data.classnames,
                    items,
                    top_pairs,
                    per_pair,
                )
            )
    finally:
        if caption_stores is not None:
            caption_stores.close()
    run_path = trained.run.path if trained.run is not None else Path(".")
    target = Path(out) if out else run_path / "gallery.html"
    title = f"Errors of {cfg.method} on {cfg.data.dataset} ({trained.meta.get('protocol', '?')})"
    atomic.write_text(target, page(title, sections))
    logger.info("wrote %s", target)
    return target
