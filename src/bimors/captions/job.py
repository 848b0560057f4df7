"""The caption job: caption and encode every image not yet in the store, batch by batch."""

from __future__ import annotations

import logging
from pathlib import Path

from tqdm.auto import tqdm

from bimors.captions.captioner import Captioner
from bimors.captions.encoder import CaptionEncoder
from bimors.captions.store import CaptionStore, file_sha256
from bimors.data.images import open_rgb
from bimors.errors import DataError

logger = logging.getLogger(__name__)


def provenance(captioner: Captioner, encoder: CaptionEncoder) -> dict:
    """What made the vectors: model ids and revisions, settings, dtypes, library versions."""
    import torch
    import transformers

    return {
        "captioner": captioner.model_id,
        "captioner_revision": captioner.revision,
        "encoder": encoder.model_id,
        "encoder_revision": encoder.revision,
        "generation": captioner.settings.as_dict(),
        "pooling": "masked-mean",
        "captioner_dtype": str(next(captioner.model.parameters()).dtype),
        "transformers": transformers.__version__,
        "torch": torch.__version__,
    }


def caption_images(
    root: str | Path,
    relpaths: list[str],
    store_path: str | Path,
    captioner: Captioner,
    encoder: CaptionEncoder,
    batch_size: int = 16,
    progress: bool = True,
) -> CaptionStore:
    """Caption every image of ``relpaths`` under ``root`` that the store lacks.

    Each batch is committed in one transaction, so a rerun after a crash
    continues where it stopped. Images that fail to decode are recorded in the
    store's failure table and reported; the job then raises, listing them.
    """
    root = Path(root)
    store = CaptionStore.create(store_path, encoder.dim, provenance(captioner, encoder))
    done = store.keys()
    todo = [r for r in sorted(set(relpaths)) if r not in done]
    logger.info(
        "%d images to caption (%d already in %s)", len(todo), len(done & set(relpaths)), store.path
    )
    failed: list[tuple[str, str]] = []
    bar = tqdm(total=len(todo), desc="captions", unit="img", disable=not progress)
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        images, ok, bad = [], [], []
        for rel in batch:
            try:
                images.append(open_rgb(root / rel))
                ok.append(rel)
            except DataError as err:
                bad.append((rel, str(err)))
        if bad:
            store.add_failures(bad)
            failed.extend(bad)
        if ok:
            texts = captioner.caption(images)
            vectors = encoder.encode(texts)
            store.add(
                (rel, file_sha256(root / rel), text, vec)
                for rel, text, vec in zip(ok, texts, vectors, strict=True)
            )
        bar.update(len(batch))
    bar.close()
    if failed:
        listing = "\n  ".join(f"{r}: {e}" for r, e in failed)
        raise DataError(f"{len(failed)} image(s) could not be captioned:\n  {listing}")
    return store
