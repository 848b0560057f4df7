"""A disk cache of frozen image-encoder outputs, per image and per augmented view.

The image encoder never trains, so its outputs for one image under one
transform are the same in every epoch, method and seed. They are stored in a
*feature space*: a folder named by a digest of everything that determines
them (backbone adapter and model id, a SHA-256 of the backbone's weights, the
transform's description, the precision and device type they were computed
in, and the library versions), so changing any of these uses another folder
and never reads stale features. Inside a space, an entry is one image (its
absolute path, size and modification time) and one view index (0 for the
deterministic test transform; 0..V-1 for seeded augmented training views),
stored one safetensors file per field (``pooled``, ``tokens``) so a method
that needs only the pooled feature never pays for token states. Files are
written under a temporary name and renamed, so concurrent or killed writers
never leave half an entry. Each file carries a CRC-32 of its tensor in its
metadata (:mod:`bimors.core.checksum`), checked on every read: a damaged or
unchecked entry is never used, it is computed again with a one-line notice.

Deleting the cache folder is always safe; it is rebuilt on demand.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import weakref
from pathlib import Path

import torch
from torch import Tensor

from bimors.backbones.base import FrozenCLIP
from bimors.core import atomic, checksum
from bimors.core.errors import DataError, IntegrityError

logger = logging.getLogger(__name__)

#: Bump when the layout of entries or the seeding of augmented views changes.
FORMAT = "bimors-feature-cache/2"  # 2: a CRC-32 per file
FIELDS = ("pooled", "tokens")

_WEIGHT_DIGESTS: weakref.WeakKeyDictionary[FrozenCLIP, str] = weakref.WeakKeyDictionary()


def save_value(path: Path, value: Tensor) -> None:
    """Write one tensor atomically as a one-tensor safetensors file with its checksum."""
    from safetensors.torch import save_file

    value = value.detach().cpu().contiguous().clone()
    with atomic.atomic_path(path) as tmp:
        save_file(
            {"value": value}, str(tmp), metadata={checksum.METADATA_KEY: checksum.of_tensor(value)}
        )


def load_value(path: Path, what: str, folder: Path) -> Tensor:
    """The tensor of a one-tensor safetensors file, or a DataError that names the file and
    says how to recover (``what``: the kind of file; ``folder``: what may be deleted).

    An IntegrityError (a DataError) when the file's checksum is missing or disagrees
    with its tensor: callers that can compute the value again catch it and do.
    """
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            stored = (f.metadata() or {}).get(checksum.METADATA_KEY)
            value = f.get_tensor("value")
    except FileNotFoundError:
        raise DataError(
            f"{what} {path} disappeared while in use; rerun to compute it again"
        ) from None
    except Exception as err:  # safetensors raises several types for damaged files
        raise DataError(
            f"{what} {path} cannot be read ({err}); delete it (or its folder {folder}) and "
            "rerun to compute it again"
        ) from None
    if stored is None or stored != checksum.of_tensor(value):
        problem = "carries no checksum" if stored is None else "fails its checksum"
        raise IntegrityError(
            f"{what} {path} {problem} (damaged on disk); delete it (or its folder {folder}) "
            "and rerun to compute it again"
        )
    # A copy in freshly allocated (64-byte aligned) memory: safetensors may hand out a view
    # at the file's data offset, and BLAS kernels may round differently on unaligned input,
    # so training on a loaded view would not be bit-equal to training on the encoder's
    # output (Intel MKL's reproducibility conditions require aligned input).
    return value.clone()


def damaged_notice(path: Path, err: Exception) -> None:
    """The one-line notice of an entry that is computed again, and its removal."""
    logger.warning("%s; computing it again", str(err).split("; delete it")[0])
    path.unlink(missing_ok=True)


def default_cache_dir() -> Path:
    """``$BIMORS_CACHE_DIR``, else ``features`` in the user cache of bimors.

    The user cache is ``$BIMORS_CACHE``, ``$XDG_CACHE_HOME/bimors`` or
    ``~/.cache/bimors`` (where published splits are kept too).
    """
    if os.environ.get("BIMORS_CACHE_DIR"):
        return Path(os.environ["BIMORS_CACHE_DIR"]).expanduser()
    from bimors.data.published import cache_dir

    return cache_dir() / "features"


def weights_digest(backbone: FrozenCLIP) -> str:
    """SHA-256 of every backbone tensor (names, dtypes, shapes, bytes); memoised per object.

    Hashing is about 1 GB/s, so a ViT-B/16 CLIP costs well under a second, once.
    """
    if backbone in _WEIGHT_DIGESTS:
        return _WEIGHT_DIGESTS[backbone]
    h = hashlib.sha256()
    for name, t in sorted(backbone.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    _WEIGHT_DIGESTS[backbone] = h.hexdigest()
    return _WEIGHT_DIGESTS[backbone]


def space_description(
    backbone: FrozenCLIP, transform: object, precision: str, device: torch.device
) -> dict[str, str]:
    """Everything that determines the features of an image: the key of a feature space."""
    import PIL
    import torchvision

    return {
        "format": FORMAT,
        "backbone": f"{backbone.adapter}:{backbone.model_id}",
        "backbone_class": type(backbone).__qualname__,
        "weights_sha256": weights_digest(backbone),
        "transform": repr(transform),
        "precision": precision,
        "device": torch.device(device).type,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "pillow": PIL.__version__,
    }


class FeatureSpace:
    """The entries of one feature space (a folder under the cache root)."""

    def __init__(self, folder: Path, description: dict[str, str]) -> None:
        self.folder = folder
        self.description = description

    @staticmethod
    def entry_name(image: Path, view: int) -> str:
        """Name of the entry of ``image`` (path, size and mtime) in ``view``."""
        try:
            st = os.stat(image)
        except FileNotFoundError:
            raise DataError(
                f"image {image} does not exist; check the dataset root and split file"
            ) from None
        ident = f"{Path(image).resolve()}|{st.st_size}|{st.st_mtime_ns}|{view}"
        return hashlib.sha256(ident.encode()).hexdigest()[:32]

    def path(self, name: str, field: str) -> Path:
        return self.folder / name[:2] / f"{name}.{field}.safetensors"

    def has(self, name: str, fields: tuple[str, ...]) -> bool:
        return all(self.path(name, f).is_file() for f in fields)

    def intact(self, name: str, fields: tuple[str, ...]) -> bool:
        """Whether every field of an entry exists and passes its checksum; a damaged field is
        removed with a one-line notice (so the caller computes the entry again)."""
        ok = True
        for f in fields:
            path = self.path(name, f)
            if not path.is_file():
                ok = False
                continue
            try:
                load_value(path, "feature cache entry", self.folder)
            except IntegrityError as err:
                damaged_notice(path, err)
                ok = False
        return ok

    def save(self, name: str, tensors: dict[str, Tensor]) -> None:
        """Write each field of one entry atomically."""
        key_file = self.folder / "key.json"
        if not key_file.is_file():
            atomic.write_json(key_file, self.description)  # for people inspecting the cache
        for field, value in tensors.items():
            save_value(self.path(name, field), value)

    def load(self, name: str, field: str) -> Tensor:
        """One field of one entry; a missing or unreadable file is a DataError naming it."""
        return load_value(self.path(name, field), "feature cache entry", self.folder)


class FeatureCache:
    """Feature spaces under ``root`` (default :func:`default_cache_dir`)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

    def space(self, description: dict[str, str]) -> FeatureSpace:
        """The space keyed by ``description`` (see :func:`space_description`)."""
        digest = hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()
        return FeatureSpace(self.root / digest[:24], description)
