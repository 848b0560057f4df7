"""A finished run as a Hugging Face model repository, and loading one back.

``export_run`` writes a folder that is a valid model repository:

- ``model.safetensors``: the method's own learned state (exactly what
  ``checkpoint.pt`` holds under ``state``; CLIP and the captioner are not
  copied: they are named in the config and loaded from their own sources);
- ``config.json``: the resolved run config, the prompt names the method was
  trained on, the run's meta and its records' accuracies;
- ``README.md``: a model card whose YAML metadata (library, tags, base model,
  datasets, ``model-index`` results) ``huggingface_hub.ModelCard`` parses, and a
  human summary with the loading code.

``load_exported`` rebuilds the backbone and method from such a folder with the
same strict load as a run folder, so ``Predictor.from_pretrained`` predicts
exactly what ``Predictor.from_run`` predicts on the run it was exported from.
``push_run`` is a thin call into ``huggingface_hub`` (``create_repo``,
``upload_folder``).
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from bimors import __version__
from bimors.backbones import load_backbone
from bimors.core import atomic
from bimors.core.errors import CheckpointError, ConfigError
from bimors.engine.checkpoint import read_checkpoint
from bimors.engine.dist import Dist
from bimors.engine.rundir import RunDir, check_run_version
from bimors.methods import METHODS, build_method
from bimors.run.config import RunConfig
from bimors.run.trained import TrainedRun

logger = logging.getLogger(__name__)

FORMAT = "bimors-export/1"
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
CARD = "README.md"


def _base_model(cfg: RunConfig) -> str | None:
    """The CLIP backbone as a hub id, when it is one (a local folder or file is not)."""
    b = cfg.backbone
    if b.adapter == "hf" and not Path(b.model).expanduser().exists() and "/" in b.model:
        return b.model
    pretrained = b.pretrained or ""
    if pretrained.startswith("hf-file:"):
        parts = pretrained[len("hf-file:") :].split("/")
        return "/".join(parts[:2]) if len(parts) >= 3 else None
    if b.model.startswith("hf-hub:"):
        return b.model[len("hf-hub:") :]
    return None


def _results(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "dataset": r["dataset"],
            "split": r["split"],
            "protocol": r["protocol"],
            "seed": r["seed"],
            "shots": r.get("shots"),
            "accuracy": r["accuracy"],
        }
        for r in records
    ]


def model_card(cfg: RunConfig, meta: dict[str, Any], records: list[dict[str, Any]]) -> str:
    """The ``README.md`` of an exported run: YAML metadata and a human summary."""
    from huggingface_hub import EvalResult, ModelCardData

    base = _base_model(cfg)
    datasets = sorted({r["dataset"] for r in records} | {str(meta.get("dataset"))})
    name = f"bimors-{cfg.method}-{meta.get('dataset')}-seed{meta.get('seed')}"
    evals = [
        EvalResult(
            task_type="image-classification",
            task_name="Few-shot remote-sensing scene classification",
            dataset_type=r["dataset"],
            dataset_name=r["dataset"],
            dataset_split=r["split"],
            metric_type="accuracy",
            metric_name=f"accuracy ({r['protocol']}, {r['split']}, {r.get('shots')} shots)",
            metric_value=r["accuracy"],
        )
        for r in records
    ]
    data = ModelCardData(
        library_name="bimors",
        tags=["bimors", cfg.method, "remote-sensing", "clip", "few-shot", "prompt-learning"],
        base_model=base,
        datasets=datasets,
        model_name=name,
        eval_results=evals or None,
        license=None,
    )
    rows = "\n".join(f"| {r['dataset']} | {r['split']} | {r['accuracy']:.2f} |" for r in records)
    protocol = meta.get("protocol", "?")
    shots = cfg.data.shots
    backbone = f"{cfg.backbone.adapter}:{cfg.backbone.model}" + (
        f" ({cfg.backbone.pretrained})" if cfg.backbone.pretrained else ""
    )
    captions = (
        f"\nCaptions: `{cfg.captions.captioner}`, encoded by `{cfg.captions.encoder}`; "
        "`Predictor` captions new images with them on the fly.\n"
        if METHODS.get(cfg.method).uses_captions
        else ""
    )
    return f"""---
{data.to_yaml()}
---

# {name}

A `{cfg.method}` model trained with [bimors](https://pypi.org/project/bimors/) on
`{meta.get("dataset")}`: protocol `{protocol}`, {shots} shots per class, seed
{meta.get("seed")}, {cfg.train.epochs} epochs, frozen CLIP backbone `{backbone}`.
Only the method's own parameters are stored here (`{WEIGHTS}`); the backbone is
loaded from its own source, as named in `{CONFIG}`.
{captions}
| dataset | split | accuracy (%) |
|---|---|---|
{rows}

## How to load it

```python
from bimors.predict import Predictor

predictor = Predictor.from_pretrained("THIS_REPO_OR_FOLDER")
print(predictor.predict(["scene.jpg"], topk=3))
```

or `bimors predict hf:THIS_REPO scene.jpg`. Exported by bimors {__version__}.
"""


def export_run(run_dir: str | Path, out: str | Path, allow_other_version: bool = False) -> Path:
    """Write ``run_dir`` (a finished run) as a model repository folder ``out``.

    ``out`` must not exist or be empty: an export never mixes with other files.
    """
    from safetensors.torch import save_file

    run = RunDir(run_dir)
    meta = check_run_version(run, allow_other_version)
    if not run.checkpoint.is_file():
        raise CheckpointError(f"{run.path} has no checkpoint.pt: the run has not finished training")
    cfg = RunConfig.from_dict(run.config())
    payload = read_checkpoint(run.checkpoint)
    records = run.records()
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(
            f"{out} exists and is not an empty folder; choose a new folder to export to"
        )
    state = payload["state"]
    bad = sorted(k for k, v in state.items() if not hasattr(v, "contiguous"))
    if bad:
        raise CheckpointError(f"{run.checkpoint}: non-tensor state {bad} cannot be exported")
    out.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(out / WEIGHTS) as tmp:
        save_file(
            {k: v.contiguous() for k, v in state.items()},
            str(tmp),
            metadata={"format": FORMAT, "method": payload["method"]},
        )
    config = {
        "format": FORMAT,
        "bimors_version": __version__,
        "method": payload["method"],
        "classnames": list(payload["classnames"]),
        "config": cfg.to_dict(),
        "meta": meta,
        "results": _results(records),
    }
    atomic.write_text(out / CONFIG, json.dumps(config, indent=2, sort_keys=True) + "\n")
    atomic.write_text(out / CARD, model_card(cfg, meta, records))
    logger.info("exported %s to %s", run.path, out)
    return out


def resolve_source(source: str | Path, revision: str | None = None) -> Path:
    """A local export folder as is; ``hf:ID`` or a hub id downloaded with ``huggingface_hub``."""
    text = str(source)
    if text.startswith("hf:"):
        text = text[3:]
    elif Path(text).expanduser().is_dir():
        return Path(text).expanduser()
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id=text, revision=revision))


def load_exported(
    source: str | Path, device: str = "auto", revision: str | None = None
) -> TrainedRun:
    """Rebuild the backbone and the method of an exported run, loading its weights strictly."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = resolve_source(source, revision)
    config_file = folder / CONFIG
    try:
        exported = json.loads(config_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(
            f"{folder} has no {CONFIG}: it is not a bimors export (make one with bimors export)"
        ) from None
    except ValueError as err:
        raise CheckpointError(f"{config_file} is not valid JSON ({err})") from None
    if exported.get("format") != FORMAT:
        raise CheckpointError(f"{config_file} is not a bimors export (expected format {FORMAT})")
    cfg = RunConfig.from_dict(exported["config"])
    try:
        state = load_file(str(folder / WEIGHTS))
    except (FileNotFoundError, SafetensorError, OSError) as err:
        raise CheckpointError(f"{folder / WEIGHTS} cannot be read ({err})") from None
    dist = Dist(device)
    b = cfg.backbone
    backbone = load_backbone(b.adapter, b.model, b.pretrained, b.activation).to(dist.device)
    caption = state.get("caption_proj.weight")
    classnames = list(exported["classnames"])
    method = build_method(
        cfg.method,
        backbone,
        classnames,
        cfg.method_params,
        int(caption.shape[1]) if caption is not None else None,
        names=None,
    )
    if exported["method"] != method.name:
        raise CheckpointError(
            f"{config_file} names method {exported['method']!r}, not {cfg.method!r}"
        )
    method.load_method_state_dict(state, str(folder / WEIGHTS))
    method.eval()
    return TrainedRun(None, cfg, dict(exported.get("meta") or {}), backbone, method, classnames)


def push_run(
    run_dir: str | Path, repo_id: str, private: bool = False, allow_other_version: bool = False
) -> str:
    """Export ``run_dir`` and upload it to the model repository ``repo_id``; returns its URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    with tempfile.TemporaryDirectory() as tmp:
        folder = export_run(run_dir, Path(tmp) / "export", allow_other_version)
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            repo_type="model",
            commit_message=f"bimors export of {Path(run_dir).name}",
        )
    return str(url)
