"""What made a caption store's vectors, and how to tell whether a store fits a run.

A caption vector is only meaningful next to the models and settings that made
it: another captioner, decoding setting or dtype changes the text, another
encoder changes the vector space. The store therefore records this provenance
once, a resumed job refuses to append under a different one, and the trainer
refuses vectors made differently from what its config names.

Library versions are recorded too but not compared: a patch release of torch
must not lock a user out of a 100,000-image store; a change is logged instead.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bimors.captions.captioner import Captioner
    from bimors.captions.encoder import CaptionEncoder

#: Provenance fields that must agree for two sets of vectors to be mixed. The models are
#: compared by :func:`portable_ref` (hub id, or a local folder's name and weights digest),
#: never by path, so a store moves between machines and virtual environments.
IDENTITY_KEYS = (
    "captioner_id",
    "captioner_revision",
    "captioner_dtype",
    "generation",
    "encoder_id",
    "encoder_revision",
    "encoder_dtype",
    "pooling",
    "dim",
)


#: Key of an expectation that says where the models are on this machine (for the commands an
#: error prints); :func:`differences` does not compare it.
MODELS = "_models"

#: Generation fields added after stores were first written, with the value every older
#: store was made with (the budget was max_new_tokens, the image went in unchanged).
LEGACY_GENERATION: dict[str, Any] = {"max_length": None, "preprocess": "none"}


def with_legacy_defaults(provenance: Mapping[str, Any]) -> dict[str, Any]:
    """``provenance`` with the generation fields an older store lacks filled in.

    A store written before ``max_length`` and ``preprocess`` existed was made
    without either, so it keeps matching a config that asks for neither.
    """
    out = dict(provenance)
    for role in ("captioner", "encoder"):  # stores before portable ids named models by path
        if f"{role}_id" not in out and out.get(role):
            out[f"{role}_id"] = portable_ref(str(out[role]))
    generation = out.get("generation")
    if isinstance(generation, Mapping):
        out["generation"] = {**LEGACY_GENERATION, **generation}
    return out


def model_ref(model_id: str) -> str:
    """A hub id as given; a local folder as its absolute path (so the cwd never matters)."""
    path = Path(model_id).expanduser()
    return str(path.resolve()) if path.is_dir() else model_id


def portable_ref(model_id: str) -> str:
    """What identifies a model on any machine: a hub id as given; a local folder as
    ``folder:NAME@sha256:DIGEST`` (its weights' digest); a path that is not here as given."""
    from bimors.core.filehash import folder_digest

    path = Path(model_id).expanduser()
    if path.is_dir():
        return f"folder:{path.resolve().name}@sha256:{folder_digest(path)[:16]}"
    return model_id


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape captions and vectors."""
    import torch
    import transformers

    from bimors import __version__

    return {
        "bimors": __version__,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def job_provenance(captioner: Captioner, encoder: CaptionEncoder) -> dict[str, Any]:
    """The provenance record of vectors made by ``captioner`` then ``encoder``."""
    from bimors.captions.captioner import dtype_name
    from bimors.captions.encoder import POOLING

    return {
        "captioner": model_ref(captioner.model_id),
        "captioner_id": portable_ref(captioner.model_id),
        "captioner_revision": captioner.revision,
        "captioner_class": type(captioner.model).__name__,
        "captioner_dtype": dtype_name(captioner.dtype),
        "generation": captioner.settings.as_dict(),
        "encoder": model_ref(encoder.model_id),
        "encoder_id": portable_ref(encoder.model_id),
        "encoder_revision": encoder.revision,
        "encoder_class": type(encoder.model).__name__,
        "encoder_dtype": dtype_name(encoder.dtype),
        "pooling": POOLING,
        "dim": encoder.dim,
        "versions": library_versions(),
    }


def differences(recorded: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    """Human-readable mismatches of ``expected`` against ``recorded``.

    Only the keys ``expected`` names are compared (nested dicts likewise), so a
    caller that knows just the encoder can check just the encoder.
    """
    out = []
    for key, want in expected.items():
        if key == MODELS:  # where the models are here: for commands, not compared
            continue
        have = recorded.get(key)
        if isinstance(want, Mapping) and isinstance(have, Mapping):
            out += [f"{key}.{d}" for d in differences(have, want)]
        elif have != want:
            out.append(f"{key}: store has {have!r}, expected {want!r}")
    return out


def identity(provenance: Mapping[str, Any]) -> dict[str, Any]:
    """The compared part of a provenance record (model ids derived where only paths are)."""
    full = with_legacy_defaults(provenance)
    return {k: full.get(k) for k in IDENTITY_KEYS}


def expected_provenance(
    captioner: str | None = None,
    encoder: str | None = None,
    num_beams: int | None = None,
    max_new_tokens: int | None = None,
    dim: int | None = None,
    generation: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The fields a training config pins, for :meth:`CaptionStore.vectors` ``expect``.

    ``generation`` (e.g. :meth:`bimors.run.config.CaptionConfig.expected_generation`)
    pins every generation field it names, None values included; without it
    only ``num_beams`` and ``max_new_tokens`` are pinned where given.
    """
    out: dict[str, Any] = {}
    if captioner is not None:
        out["captioner_id"] = portable_ref(captioner)
        out.setdefault(MODELS, {})["captioner"] = model_ref(captioner)
    if encoder is not None:
        out["encoder_id"] = portable_ref(encoder)
        out.setdefault(MODELS, {})["encoder"] = model_ref(encoder)
    if generation is None:
        generation = {
            k: v
            for k, v in (("num_beams", num_beams), ("max_new_tokens", max_new_tokens))
            if v is not None
        }
    if generation:
        out["generation"] = generation
    if dim is not None:
        out["dim"] = dim
    return out


def default_store_path(root: str | Path, captioner: str, encoder: str) -> Path:
    """``<root>/.bimors/captions/<captioner>__<encoder>.sqlite``.

    Beside the data, so the store travels with the dataset and every machine
    finds it without configuration; in a hidden folder, so image-folder
    datasets never take it for a class; named after both models, so stores of
    two encoders never collide. A read-only dataset folder needs ``--store``.
    """
    return Path(root) / ".bimors" / "captions" / f"{_slug(captioner)}__{_slug(encoder)}.sqlite"


def _slug(model_id: str) -> str:
    ref = model_ref(model_id)
    if Path(ref).is_absolute():  # a local folder: its name plus a hash of where it is
        tag = hashlib.sha256(ref.encode("utf-8")).hexdigest()[:8]
        ref = f"{Path(ref).name}-{tag}"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", ref.replace("/", "--"))


def caption_command(
    dataset: str | None,
    root: str | os.PathLike[str] | None,
    store: str | os.PathLike[str] | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> str:
    """The ``bimors caption`` command that makes (or completes) a store with ``provenance``.

    Options equal to the CLI defaults are left out, and ``--store`` only when
    the store sits at its default location, so the command stays short.
    """
    from bimors.captions.captioner import DEFAULT_CAPTIONER, OFFICIAL_SETTINGS
    from bimors.captions.encoder import DEFAULT_ENCODER

    prov = dict(provenance or {})
    args = ["bimors", "caption", "--dataset", dataset or "NAME", "--root", str(root or "DIR")]
    models = {**{k: prov[k] for k in ("captioner", "encoder") if k in prov}, **prov.get(MODELS, {})}
    captioner = models.get("captioner", DEFAULT_CAPTIONER)
    encoder = models.get("encoder", DEFAULT_ENCODER)
    default = default_store_path(root, captioner, encoder) if root is not None else None
    if store is not None and (default is None or Path(store).resolve() != default.resolve()):
        args += ["--store", str(store)]
    if captioner != DEFAULT_CAPTIONER:
        args += ["--captioner", captioner]
    if prov.get("captioner_revision"):
        args += ["--captioner-revision", prov["captioner_revision"]]
    if encoder != DEFAULT_ENCODER:
        args += ["--encoder", encoder]
    if prov.get("encoder_revision"):
        args += ["--encoder-revision", prov["encoder_revision"]]
    if prov.get("captioner_dtype"):
        args += ["--dtype", prov["captioner_dtype"]]
    defaults = OFFICIAL_SETTINGS.as_dict()  # the CLI's defaults
    gen = prov.get("generation", {})
    if gen.get("max_new_tokens") is not None:
        args += ["--max-new-tokens", str(gen["max_new_tokens"])]
    elif gen.get("max_length") not in (None, defaults["max_length"]):
        args += ["--max-length", str(gen["max_length"])]
    if "num_beams" in gen and gen["num_beams"] != defaults["num_beams"]:
        args += ["--num-beams", str(gen["num_beams"])]
    preprocess = gen.get("preprocess", "none") if gen else defaults["preprocess"]  # legacy: none
    if preprocess != defaults["preprocess"]:
        args += ["--preprocess", preprocess]
    if gen.get("prompt"):
        args += ["--prompt", gen["prompt"]]
    if "early_stopping" in gen and gen["early_stopping"] != defaults["early_stopping"]:
        args.append("--no-early-stopping")
    return shlex.join(args)
