"""Loading frozen models from hub ids, folders and checkpoint files, with one-line failures.

Every model the toolkit loads (the CLIP backbone, the captioner, the caption
encoder) goes through the libraries' public ``from_pretrained`` /
``create_model`` entry points. What differs between library releases (the
name of the dtype keyword) and what the libraries report badly (a mistyped
folder reported as a malformed hub id, a checkpoint whose keys do not fit the
architecture loaded with random weights and a warning, a hub id offline shown
as a long traceback) is handled here once, so each failure is one line that
names the model, the cause and the fix.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch

from bimors.core.errors import ConfigError

#: transformers renamed ``torch_dtype`` to ``dtype`` in 4.56; earlier releases know only
#: the old name and newer ones warn about it.
_DTYPE_KEYWORD_SINCE = (4, 56)


class ModelLoadError(ConfigError):
    """A model that cannot be loaded; the message names the model, the cause and the fix."""


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def dtype_kwargs(dtype: torch.dtype) -> dict[str, torch.dtype]:
    """The ``from_pretrained`` keyword for ``dtype`` under the installed transformers."""
    import transformers

    name = (
        "dtype"
        if _version_tuple(transformers.__version__) >= _DTYPE_KEYWORD_SINCE
        else ("torch_dtype")
    )
    return {name: dtype}


def looks_like_path(model_id: str) -> bool:
    """True when ``model_id`` is meant as a local path rather than a hub id ``org/name``.

    A hub id has at most one ``/`` and no leading ``.``, ``/`` or ``~``; anything
    else, anything that exists on disk, and ``org/name`` whose ``org`` is an
    existing local folder (a mistyped folder, the common case) is a path.
    """
    if not model_id:
        return False
    if model_id.startswith(("/", ".", "~")) or (os.sep != "/" and os.sep in model_id):
        return True
    if model_id.count("/") > 1 or Path(model_id).exists():
        return True
    head = model_id.split("/", 1)[0]
    return "/" in model_id and Path(head).is_dir()


def missing_folder(kind: str, model_id: str) -> ModelLoadError | None:
    """The error for a path that does not exist, naming the nearest folder that does."""
    path = Path(model_id).expanduser()
    if not looks_like_path(model_id) or path.exists():
        return None
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    entries = sorted(p.name for p in parent.iterdir())[:8] if parent.is_dir() else []
    near = f"; {parent}/ holds: {', '.join(entries)}" if entries else ""
    return ModelLoadError(
        f"cannot load the {kind} {model_id!r}: no such file or folder{near}. Fix the path, "
        "or pass a hub id of the form org/name"
    )


def load_failure(kind: str, model_id: str, err: BaseException) -> ModelLoadError:
    """Turn a library's load exception into one line that names the model, cause and fix."""
    import transformers

    folder = missing_folder(kind, model_id)
    if folder is not None:
        return folder
    text = " ".join(str(err).split())
    offline = os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "TRUE", "yes") or (
        os.environ.get("TRANSFORMERS_OFFLINE") in ("1", "true", "TRUE", "yes")
    )
    lowered = text.lower()
    if isinstance(err, (ImportError, AttributeError, TypeError)):
        return ModelLoadError(
            f"cannot load the {kind} {model_id!r} with transformers {transformers.__version__}: "
            f"{type(err).__name__}: {_short(text)}. bimors supports the releases pinned in its "
            "pyproject.toml; install one of them (pip install -U bimors)"
        )
    path = Path(model_id).expanduser()
    if looks_like_path(model_id) and path.is_dir():
        held = ", ".join(sorted(p.name for p in path.iterdir())[:10]) or "nothing"
        return ModelLoadError(
            f"cannot load the {kind} from folder {model_id!r} ({type(err).__name__}: "
            f"{_short(text, 200)}); it holds: {held}. A transformers folder is written by "
            "save_pretrained (config.json, weights, tokenizer and preprocessor files)"
        )
    hub_words = ("connect", "offline", "couldn't", "could not", "cache", "resolve", "not a valid")
    if not looks_like_path(model_id) and any(w in lowered for w in hub_words):
        where = (
            "HF_HUB_OFFLINE is set, so only the local Hugging Face cache is read"
            if offline
            else "the hub could not be reached or has no such repository"
        )
        return ModelLoadError(
            f"cannot load the {kind} {model_id!r}: not in the local Hugging Face cache and "
            f"{where}. Run once on a machine with internet access (or unset HF_HUB_OFFLINE), "
            "check the id, or pass a local folder written by save_pretrained"
        )
    return ModelLoadError(
        f"cannot load the {kind} {model_id!r} ({type(err).__name__}: {_short(text)}); pass a "
        "hub id (on a machine with internet access or a filled Hugging Face cache) or a local "
        "folder written by save_pretrained"
    )


def _short(text: str, limit: int = 300) -> str:
    """``text`` within ``limit`` characters, cut after a whole word (never mid-word)."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 3].rsplit(" ", 1)[0].rstrip(" ,;:")
    return cut + "..."


def _reason(text: str) -> str:
    """The first sentence of a library's error: the reason, without its generic advice."""
    text = " ".join(text.split())
    head = text.split(". ", 1)[0].rstrip(".")
    return _short(head, 240)


def offline_weights_advice(arch: str, tag: str, reason: str) -> str:
    """One complete line for open_clip weights that could not be fetched, with commands that work.

    The first command fills the Hugging Face cache on a connected machine (the
    cache open_clip reads); the second runs here on a copy of the file, which a
    backbone preset accepts as ``backbone.pretrained``.
    """
    base = arch.removesuffix("-quickgelu")
    fill = f"python -c \"import open_clip; open_clip.create_model('{base}', pretrained='{tag}')\""
    return (
        f"cannot fetch open_clip weights {tag!r} for {arch!r} ({_reason(reason)}). On a machine "
        f"with internet access run `{fill}` to fill the Hugging Face cache (HF_HOME), or run "
        "with a local copy of the weights: `--set backbone.pretrained=/path/to/weights.bin`"
    )


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file (safetensors, or a torch file read with weights_only).

    Accepts a plain state dict, one under ``state_dict`` or ``model`` (training
    checkpoints), and strips DDP's ``module.`` prefix, as released RS CLIP
    checkpoints come in all three forms.
    """
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state: Mapping = load_file(str(path))
    else:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise ValueError("it holds no state dict of tensors")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return dict(state)


def load_strict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    """Load ``state`` into ``model`` with every key and shape matching, or say what differs."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if shapes:
            k = shapes[0]
            parts.append(
                f"{len(shapes)} of another shape (e.g. {k}: {tuple(state[k].shape)} in the file, "
                f"{tuple(own[k].shape)} in the model)"
            )
        raise ModelLoadError(
            f"{what}: the checkpoint's keys do not fit the architecture: {'; '.join(parts)}. "
            "Pick the architecture the checkpoint was trained with (`bimors list` shows the "
            "presets and their architectures)"
        )
    model.load_state_dict(state, strict=True)


HF_FILE = "hf-file:"


def is_remote_weights(ref: str | None) -> bool:
    """True for weights named by hub file (``hf-file:REPO/PATH``) or URL."""
    return bool(ref) and (
        ref.startswith(HF_FILE) or ref.startswith(("https://", "http://", "file://"))
    )


def cache_dir() -> Path:
    """Where downloaded backbone checkpoints are kept (``$BIMORS_CACHE/backbones``)."""
    root = os.environ.get("BIMORS_CACHE") or Path.home() / ".cache" / "bimors"
    return Path(root) / "backbones"


def fetch_weights(ref: str) -> Path:
    """A local checkpoint file for ``hf-file:REPO/PATH`` or a URL (a zip is unpacked).

    Hub files go through the Hugging Face cache (so ``HF_HUB_OFFLINE`` and
    mirrors work as for every other model); URLs are downloaded once into
    :func:`cache_dir`, to a partial file renamed when complete, so an
    interrupted download is never mistaken for a checkpoint.
    """
    if ref.startswith(HF_FILE):
        parts = ref[len(HF_FILE) :].split("/")
        if len(parts) < 3 or not all(parts):
            raise ModelLoadError(
                f"backbone.pretrained={ref!r}: write hub files as hf-file:ORG/REPO/PATH/IN/REPO"
            )
        from huggingface_hub import hf_hub_download

        repo, filename = "/".join(parts[:2]), "/".join(parts[2:])
        try:
            return Path(hf_hub_download(repo, filename))
        except Exception as err:  # hub errors have many types; all mean "not available"
            fetch = (
                'python -c "from huggingface_hub import hf_hub_download; '
                f"print(hf_hub_download('{repo}', '{filename}'))\""
            )
            raise ModelLoadError(
                f"cannot fetch {filename!r} from the hub repository {repo!r} "
                f"({type(err).__name__}: {_reason(str(err))}). On a machine with internet access "
                f"run `{fetch}` (it prints the file's path), then run with "
                f"`--set backbone.pretrained=/path/to/{Path(filename).name}`"
            ) from err
    return _fetch_url(ref)


def _fetch_url(url: str) -> Path:
    import zipfile

    from torch.hub import download_url_to_file

    name = url.rstrip("/").rsplit("/", 1)[-1]
    target = cache_dir() / name
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        try:
            download_url_to_file(url, str(partial), progress=False)
        except Exception as err:  # urllib raises many types
            partial.unlink(missing_ok=True)
            raise ModelLoadError(
                f"cannot download {url} ({type(err).__name__}: {_short(str(err), 200)}); on a "
                "machine without internet access download it elsewhere and pass the file's path "
                "as backbone.pretrained"
            ) from err
        os.replace(partial, target)
    if not zipfile.is_zipfile(target):
        return target
    unpacked = target.with_suffix("")
    if not unpacked.is_dir():
        staging = unpacked.with_name(unpacked.name + ".partial")
        with zipfile.ZipFile(target) as archive:
            archive.extractall(staging)
        os.replace(staging, unpacked)
    found = sorted(
        p for p in unpacked.rglob("*") if p.suffix in (".pt", ".pth", ".bin", ".safetensors")
    )
    if len(found) != 1:
        raise ModelLoadError(
            f"{target}: expected one checkpoint file in the archive, found "
            f"{len(found)} ({', '.join(p.name for p in found[:5]) or 'none'}); pass the one to "
            "use as backbone.pretrained"
        )
    return found[0]
