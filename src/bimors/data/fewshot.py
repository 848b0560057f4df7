"""Seeded few-shot sampling, its index file, and base/new class subsets.

Which images a few-shot run sees depends only on (dataset, part, shots,
seed) and the images' relative paths: each class's images are ranked by a
SHA-256 of those values and the first ``shots`` are taken. Nothing depends on
Python's per-process hash seed, on file-system order, or on the ``random``
module's algorithms (which Python does not promise to keep across versions),
so the same call picks the same images on every run, process and machine.

The choice is written to an index file (relative paths, not positions) and
read back by later runs, so a run can be repeated exactly even if the
sampling rule changes one day.

``sampler="dassl"`` instead draws exactly what the official Dassl-based codes
draw for a seed (see :mod:`bimors.data.dassl`); it must be given the parts
over all classes, since Dassl draws before the base/new cut.
``sampler="lpclip"`` draws what CoOp's linear probe (``lpclip/``) draws
(:mod:`bimors.data.lpclip`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections import defaultdict
from pathlib import Path
from typing import Literal

from bimors.core import atomic
from bimors.core.errors import DataError
from bimors.data.dassl import dassl_fewshot
from bimors.data.lpclip import lpclip_fewshot
from bimors.data.split import Sample, stable_seed

logger = logging.getLogger(__name__)

INDEX_FORMAT = "bimors-fewshot/1"

#: ``hash``: ranked by SHA-256 (ours, the default); ``dassl``: the official codes' draw;
#: ``lpclip``: CoOp's linear-probe draw (numpy, per seed).
Sampler = Literal["hash", "dassl", "lpclip"]
SAMPLERS: tuple[str, ...] = ("hash", "dassl", "lpclip")


def fewshot_indices(samples: list[Sample], shots: int, seed: int, tag: str) -> list[int]:
    """Indices into ``samples`` of ``shots`` images per class (all of a smaller class).

    ``shots <= 0`` keeps every sample. ``tag`` names the dataset and part so that
    different datasets and parts draw independently. The result is sorted.
    """
    if shots <= 0:
        return list(range(len(samples)))
    by_label: dict[int, list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        by_label[s.label].append(i)
    chosen: list[int] = []
    for label in sorted(by_label):
        ranked = sorted(
            (stable_seed("fewshot", tag, shots, seed, samples[i].relpath), samples[i].relpath, i)
            for i in by_label[label]
        )
        chosen.extend(i for _, _, i in ranked[:shots])
    return sorted(chosen)


@dataclasses.dataclass
class FewShotIndex:
    """The few-shot images of one run: relpaths per part, with what they were drawn for."""

    dataset: str
    shots: int
    seed: int
    parts: dict[str, list[str]]
    sampler: str = "hash"  # files written before the dassl sampler existed are hash draws

    def to_json(self) -> dict:
        return {"format": INDEX_FORMAT, **dataclasses.asdict(self)}

    def save(self, path: str | Path) -> None:
        atomic.write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> FewShotIndex:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"few-shot index file {path} does not exist") from None
        except json.JSONDecodeError as err:
            raise DataError(f"few-shot index file {path} is not valid JSON ({err})") from None
        if not isinstance(data, dict) or data.get("format") != INDEX_FORMAT:
            raise DataError(
                f"{path} is not a few-shot index file (format {INDEX_FORMAT}); delete it to "
                "sample again"
            )
        try:
            parts = {str(k): [str(r) for r in v] for k, v in data["parts"].items()}
            return cls(
                str(data["dataset"]),
                int(data["shots"]),
                int(data["seed"]),
                parts,
                str(data.get("sampler", "hash")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise DataError(f"{path}: malformed few-shot index ({err}); delete it") from None

    def indices(self, part: str, samples: list[Sample], source: str = "index") -> list[int]:
        """Positions in ``samples`` of this index's ``part``, in the file's order.

        Every relpath must exist. The order (and any repeat) is kept: a dassl
        draw lists images in the order Dassl drew them.
        """
        where = {s.relpath: i for i, s in enumerate(samples)}
        if part not in self.parts:
            raise DataError(f"{source}: no part {part!r} (has {', '.join(self.parts)})")
        missing = [r for r in self.parts[part] if r not in where]
        if missing:
            raise DataError(
                f"{source}: {len(missing)} {part} image(s) are not in the dataset's split "
                f"(e.g. {missing[0]}); the index was made for other data: delete it to sample again"
            )
        return [where[r] for r in self.parts[part]]


def draw_fewshot(
    parts: dict[str, tuple[list[Sample], int]], seed: int, dataset: str, sampler: str = "hash"
) -> dict[str, list[int]]:
    """Few-shot positions per part with ``sampler`` (``hash``, ``dassl`` or ``lpclip``).

    ``hash`` draws each part independently (sorted positions); ``dassl`` draws
    the parts in the order given from one stream seeded with ``seed``, in
    Dassl's order, as the official codes do; ``lpclip`` likewise from numpy's
    stream, as CoOp's linear probe does.
    """
    if sampler == "hash":
        return {
            p: fewshot_indices(samples, k, seed, f"{dataset}/{p}")
            for p, (samples, k) in parts.items()
        }
    if sampler == "dassl":
        return dassl_fewshot(parts, seed)
    if sampler == "lpclip":
        return lpclip_fewshot(parts, seed)
    raise DataError(
        f"data.fewshot_sampler: {sampler!r} is not a sampler; choose one of {', '.join(SAMPLERS)}"
    )


def fewshot_with_index(
    parts: dict[str, tuple[list[Sample], int]],
    seed: int,
    dataset: str,
    shots: int,
    index_file: str | Path | None = None,
    sampler: str = "hash",
) -> dict[str, list[int]]:
    """Few-shot indices per part, read from ``index_file`` if it exists, else drawn and saved.

    Args:
        parts: part name -> (samples, shots for that part).
        seed: the run's seed.
        dataset: dataset name (tags the draw and is checked against the file).
        shots: the run's nominal shots (checked against the file).
        index_file: where the choice is kept; None draws without saving.
        sampler: ``hash`` (ours) or ``dassl`` (the official codes'), see :func:`draw_fewshot`.
    """
    drawn = draw_fewshot(parts, seed, dataset, sampler)
    if index_file is None:
        return drawn
    path = Path(index_file)
    if not path.exists():
        FewShotIndex(
            dataset,
            shots,
            seed,
            {p: [parts[p][0][i].relpath for i in idx] for p, idx in drawn.items()},
            sampler,
        ).save(path)
        return drawn
    index = FewShotIndex.load(path)
    if (index.dataset, index.shots, index.seed, index.sampler) != (dataset, shots, seed, sampler):
        raise DataError(
            f"{path} holds the few-shot images of {index.dataset} with {index.shots} shots, "
            f"seed {index.seed} and sampler {index.sampler}, not {dataset}/{shots}/{seed} with "
            f"sampler {sampler}; use another file or delete it"
        )
    read = {p: index.indices(p, samples, str(path)) for p, (samples, _) in parts.items()}
    if read != drawn:
        logger.warning(
            "%s differs from what sampling gives today; using the file (it reproduces the "
            "original run)",
            path,
        )
    return read


def class_counts(samples: list[Sample], classnames: list[str]) -> dict[str, int]:
    """Images per class of ``samples`` (label order), every class named, zeros included."""
    counts = [0] * len(classnames)
    for s in samples:
        counts[s.label] += 1
    return dict(zip(classnames, counts, strict=True))


def warn_small_classes(counts: dict[str, int], shots: int, what: str) -> dict[str, int]:
    """One warning naming the classes of ``what`` with fewer than ``shots`` images; returns them.

    They keep all their images (no repeats), so the run trains on fewer images
    of those classes than ``data.shots`` says, and the records say how many.
    """
    small = {c: n for c, n in counts.items() if n < shots}
    if small:
        listed = ", ".join(f"{c} ({n})" for c, n in small.items())
        logger.warning(
            "%s: %d class(es) have fewer than %d images and keep all they have, no repeats: %s",
            what,
            len(small),
            shots,
            listed,
        )
    return small


def base_new_labels(num_classes: int) -> tuple[list[int], list[int]]:
    """Base = the first ceil(n/2) labels in label order, new = the rest (APPLeNet/CoCoOp)."""
    n_base = math.ceil(num_classes / 2)
    return list(range(n_base)), list(range(n_base, num_classes))


def subsample_classes(samples: list[Sample], labels: list[int]) -> list[Sample]:
    """Samples of ``labels`` only, relabelled 0..len(labels)-1 in the order given."""
    remap = {old: new for new, old in enumerate(labels)}
    return [Sample(s.relpath, remap[s.label], s.classname) for s in samples if s.label in remap]


def subsample_positions(
    samples: list[Sample], labels: list[int], positions: list[int]
) -> list[int]:
    """``positions`` into ``samples`` that fall in ``labels``, as positions into
    ``subsample_classes(samples, labels)`` (order and repeats kept).

    Dassl draws over all classes and cuts base/new afterwards; this maps such
    a draw onto the class-subsampled part.
    """
    keep = set(labels)
    new_pos: dict[int, int] = {}
    for i, s in enumerate(samples):
        if s.label in keep:
            new_pos[i] = len(new_pos)
    return [new_pos[i] for i in positions if i in new_pos]
