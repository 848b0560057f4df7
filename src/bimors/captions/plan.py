"""Which images go into which batch: the plan that makes resumed and sharded jobs exact.

Captions do not depend on which other images share a batch, but the last bits
of a caption vector do (the encoder pads each batch to its longest caption,
and matrix kernels sum in shape-dependent order). So batches are cut from the
sorted list of ALL the job's images, never from what is left to do: every
batch is committed whole, hence a job killed and resumed, or split across
processes, feeds the models exactly the batches an uninterrupted run feeds
them, and the store comes out bit-for-bit equal.

A job may name its images in groups (a grid's test split, then its few-shot
draws: :mod:`bimors.captions.scope`): batches are then cut from each sorted
group in turn, so a group that every grid shares is batched the same way
whatever else a job captions.

Only images that cannot be placed that way (a batch partly in the store
because the image list changed, or an image whose decoding failed in an
earlier run and is tried again) are gathered into extra batches at the end.
"""

from __future__ import annotations

from collections.abc import Sequence, Set


def plan_batches(
    keys: Sequence[str] | Sequence[Sequence[str]],
    done: Set[str],
    failed: Set[str],
    batch_size: int,
) -> list[list[str]]:
    """Batches of the keys that still need a caption.

    Args:
        keys: every image of the job (any order; duplicates ignored), or a
            list of groups of images, batched group by group (a key is placed
            in the first group naming it).
        done: keys already captioned in the store.
        failed: keys that failed to decode in an earlier run (tried again).
        batch_size: images per batch.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    groups = [keys] if not keys or isinstance(keys[0], str) else keys
    placed: set[str] = set()
    whole, rest = [], []
    for group in groups:
        ordered = sorted(set(group) - placed)
        placed.update(ordered)
        for start in range(0, len(ordered), batch_size):
            chunk = ordered[start : start + batch_size]
            if not any(k in done or k in failed for k in chunk):
                whole.append(chunk)
            else:
                rest += [k for k in chunk if k not in done]
    return whole + [rest[i : i + batch_size] for i in range(0, len(rest), batch_size)]
