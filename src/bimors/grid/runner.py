"""The protocol grid: every (method, dataset, seed, sweep point) run of a protocol,
skipping finished runs.

Run directories are ``OUT/<protocol>/<train dataset>/<method>/seed<k>``, and
``OUT/<protocol>/<train dataset>/<method>/<k1=v1,k2=v2>/seed<k>`` for a point
of a sweep (:mod:`bimors.grid.sweep`), so a rerun of the same command
skips what is done and resumes what is not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bimors.backbones import load_backbone
from bimors.backbones.base import FrozenCLIP
from bimors.captions.stores import CaptionStores
from bimors.core.config import apply_overrides, load_yaml
from bimors.core.errors import ConfigError
from bimors.core.locks import RunLock
from bimors.data import DATASETS, build_dataset, check_exclusions, dataset_options
from bimors.data.base import SceneDataset
from bimors.engine.dist import Dist
from bimors.grid.cost import run_cost, shard_of
from bimors.grid.sweep import (
    Point,
    Sweep,
    check_not_set,
    check_point_config,
    point_folder,
    point_overrides,
)
from bimors.methods import METHODS
from bimors.protocols.plans import PROTOCOLS
from bimors.run.config import RunConfig, resolve_config
from bimors.run.experiment import run_plan
from bimors.run.preflight import check_config, check_writable

logger = logging.getLogger(__name__)


class Roots:
    """Where each dataset lives: ``--root NAME=DIR`` pairs, or ``DATA_ROOT/<dataset folder>``."""

    def __init__(self, explicit: dict[str, str] | None = None, data_root: str | Path | None = None):
        self.explicit = {k: Path(v) for k, v in (explicit or {}).items()}
        self.data_root = Path(data_root) if data_root else None

    def __call__(self, name: str) -> Path:
        if name in self.explicit:
            return self.explicit[name]
        if self.data_root is not None:
            folder = getattr(DATASETS.get(name), "folder", None) or name
            return self.data_root / folder
        raise ConfigError(
            f"no folder given for dataset {name!r}; pass --root {name}=DIR or --data-root DIR"
        )

    def dataset(self, name: str, options: dict[str, Any] | None = None) -> SceneDataset:
        """Dataset ``name`` at its folder; ``options`` (split file, exclude list, ...) as
        :func:`bimors.data.dataset_options` gives them for the dataset a config trains on."""
        return build_dataset(name, self(name), **(options or {}))


def grid_sources(protocol: str, datasets: list[str] | None) -> list[str]:
    """The grid's training datasets: those given, else the protocol's default source."""
    default = PROTOCOLS.get(protocol).default_source
    sources = datasets or ([default] if default else [])
    if not sources:
        raise ConfigError(f"protocol {protocol!r} needs --dataset")
    return sources


def data_key(cfg: RunConfig) -> tuple[str, str]:
    """What decides a cell's datasets: its data options and exclusions (a swept
    ``data.classnames`` or ``data.split_seed`` gets datasets of its own)."""
    return repr(dataset_options(cfg.data)), repr(cfg.data.exclude)


def run_dir_for(
    out: str | Path, protocol: str, dataset: str, method: str, seed: int, point: Point = ()
) -> Path:
    """A run's folder; a sweep point adds its ``k1=v1,k2=v2`` folder above ``seed<k>``."""
    base = Path(out) / protocol / dataset / method
    return (base / point_folder(point) if point else base) / f"seed{seed}"


def config_for(
    method: str,
    dataset: str,
    root: Path,
    seed: int | None,
    config_file: str | Path | None,
    overrides: list[str],
    protocol: str | None = None,
    point: Point = (),
) -> RunConfig:
    """The resolved config of one grid cell: preset (for ``protocol`` and ``dataset``) <-
    file <- overrides <- cell values (flags and the sweep ``point``).

    The cell values come from command-line flags and ``--sweep``; a config file
    or ``--set`` naming a value for the same field is refused rather than
    silently overridden. ``seed=None`` (no ``--seed`` given) takes
    ``train.seed`` from the file or ``--set``, else 1.
    """
    user = apply_overrides(load_yaml(config_file) if config_file else {}, overrides)
    check_not_set(point, user)
    if seed is None:
        train = user.get("train") if isinstance(user.get("train"), dict) else {}
        seed = 1 if train.get("seed") is None else int(train["seed"])
    flags = {
        ("data", "dataset"): ("--dataset", dataset),
        ("data", "root"): ("--root", root),
        ("train", "seed"): ("--seed", seed),
    }
    for (section, key), (flag, value) in flags.items():
        given = (user.get(section) or {}).get(key) if isinstance(user.get(section), dict) else None
        if given is None or given == "":
            continue
        same = (
            Path(str(given)).expanduser().absolute() == Path(value).expanduser().absolute()
            if key == "root"
            else given == value
        )
        if not same:
            raise ConfigError(
                f"{section}.{key}={given!r} (config file or --set) conflicts with {flag} {value}; "
                f"give it once, with {flag}"
            )
    cell = [f"data.dataset={dataset}", f"data.root={root}", f"train.seed={seed}"]
    return resolve_config(
        method, config_file, [*overrides, *point_overrides(point), *cell], protocol
    )


def build_datasets(
    roots: Roots, source: str, targets: list[str], cfg: RunConfig
) -> tuple[SceneDataset, list[SceneDataset]]:
    """The training dataset and the transfer targets, each with the run's data options.

    The targets get the run's seeded-split seed and exclude list (not its
    ``split_file``, which is the training dataset's). With targets, the one
    exclude list is shared: each dataset takes the entries it has (``NAME:``
    scopes an entry to one dataset), and every entry must belong to one.
    """
    options = dataset_options(cfg.data)
    if targets and "exclude" in options:  # one list for all: each takes its own entries
        options["exclude_shared"] = True
    train_ds = roots.dataset(source, options)
    target_ds = [roots.dataset(t, dataset_options(cfg.data, target=True)) for t in targets]
    check_exclusions(cfg.data.exclude, [train_ds, *target_ds])
    return train_ds, target_ds


def run_grid(
    protocol: str,
    methods: list[str],
    datasets: list[str] | None,
    seeds: list[int],
    roots: Roots,
    out: str | Path,
    config_file: str | Path | None = None,
    overrides: list[str] | None = None,
    targets: list[str] | None = None,
    stores: dict[str, str] | None = None,
    overwrite: bool = False,
    progress: bool = False,
    caption: bool = False,
    shard: tuple[int, int] | None = None,
    sweep: Sweep | None = None,
) -> list[dict[str, Any]]:
    """Run ``protocol`` for every method, training dataset, sweep point and seed; returns
    all records.

    With ``caption``, the caption stores of every dataset the grid touches are
    first filled with the images its captioned runs read (see
    :func:`bimors.captions.scope.plan_images`), once per distinct caption
    config of the grid (a swept captioner or encoder has a store of its own),
    so the grid runs from raw images in one call. ``shard=(K, N)`` runs only
    the K-th of N disjoint parts of the grid (:func:`grid_cells`); every run
    holds a lock on its folder while it works, so processes that share ``out``
    never run the same run at once (a run locked by another process is
    skipped). ``sweep`` adds its points as a grid axis; each point's values go
    into the run's config and its records (``record["sweep"]``).
    """
    proto = PROTOCOLS.get(protocol)
    overrides = overrides or []
    sweep = sweep or Sweep()
    sweep.check_methods(methods)
    caption_keys = [k for k in sweep.keys if k.startswith("captions.")]
    if caption_keys and stores:
        raise ConfigError(
            f"--sweep {caption_keys[0]} gives each value its own caption store, but --store "
            "names one store per dataset; drop --store (each (captioner, encoder) pair then has "
            "its store in the default place, filled by --caption)"
        )
    sources = grid_sources(protocol, datasets)
    target_names = list(targets) if targets is not None else list(proto.default_targets)
    cost = cell_cost(protocol, target_names, config_file, overrides)
    cells = grid_cells(sources, methods, seeds, shard, sweep.points(), cost)
    if shard is not None and caption:
        raise ConfigError(
            "--caption with --shard would let shards fill one caption store at once; fill the "
            "stores first (bimors caption --dataset NAME --root DIR, once per dataset), then "
            "start the shards without --caption"
        )

    def cell_config(source: str, method: str, seed: int, point: Point) -> RunConfig:
        return config_for(
            method, source, roots(source), seed, config_file, overrides, protocol, point
        )

    # every cell's config is resolved and checked before the first one runs
    configs = {cell: cell_config(*cell) for cell in cells}
    for (_, method, _, point), cfg in configs.items():
        check_point_config(point, method, cfg.method_params)
        check_config(cfg)
    check_writable(out, "--out")
    backbones: dict[tuple, FrozenCLIP] = {}
    built: dict[tuple, tuple[SceneDataset, list[SceneDataset]]] = {}

    def datasets_of(source: str, cfg: RunConfig) -> tuple[SceneDataset, list[SceneDataset]]:
        """The datasets of a cell, built once per distinct :func:`data_key`."""
        key = (source, *data_key(cfg))
        if key not in built:
            built[key] = build_datasets(roots, source, target_names, cfg)
        return built[key]

    records: list[dict[str, Any]] = []
    for source in sources:
        mine = [c for c in cells if c[0] == source]
        if not mine:
            continue
        captioned = [c for c in mine if METHODS.get(c[1]).uses_captions]
        if caption and captioned:
            from bimors.captions.fill import fill_stores
            from bimors.captions.scope import Cell, plan_images

            # one fill per distinct caption config (and data options) of the grid, of only
            # what its captioned runs read: their draws and the evaluated test splits
            groups: dict[tuple, list[RunConfig]] = {}
            for cell in captioned:
                cfg = configs[cell]
                groups.setdefault((repr(cfg.captions), *data_key(cfg)), []).append(cfg)
            for cfgs in groups.values():
                train_ds, target_ds = datasets_of(source, cfgs[0])
                draws = [Cell(c.train.seed, c.data.shots, c.data.fewshot_sampler) for c in cfgs]
                needed = plan_images(protocol, train_ds, target_ds, draws)
                fill_stores(
                    CaptionStores(cfgs[0], stores),
                    [train_ds, *target_ds],
                    cfgs[0].train.device,
                    progress,
                    only=needed,
                )
        for cell in mine:
            _, method, seed, point = cell
            cfg = configs[cell]
            train_ds, target_ds = datasets_of(source, cfg)
            b = cfg.backbone
            key = (b.adapter, b.model, b.pretrained, b.activation)
            if key not in backbones:
                dist = Dist(cfg.train.device)
                backbones[key] = load_backbone(*key).to(dist.device)
            plan = proto.build(
                train_ds, cfg.data.shots, seed, target_ds, sampler=cfg.data.fewshot_sampler
            )
            run_dir = run_dir_for(out, protocol, source, method, seed, point)
            logger.info("%s: %s on %s, seed %d -> %s", protocol, method, source, seed, run_dir)
            lock = RunLock(run_dir)
            dist = Dist(cfg.train.device)
            if not dist.on_main(lock.acquire):
                logger.info("%s is being run by %s; skipping it", run_dir, lock.holder())
                continue
            caption_stores = CaptionStores(cfg, stores)
            try:
                records += run_plan(
                    cfg,
                    plan,
                    backbones[key],
                    caption_stores,
                    run_dir,
                    overwrite,
                    progress,
                    dist,
                    sweep=dict(point) or None,
                )
            finally:
                caption_stores.close()
                lock.release()
    return records


def cell_cost(
    protocol: str,
    targets: list[str],
    config_file: str | Path | None,
    overrides: list[str],
) -> Callable[[tuple[str, str, int, Point]], float]:
    """A cell's cost estimate (:func:`bimors.grid.cost.run_cost`) from its resolved config;
    needs no dataset folder (a placeholder root: only epochs and shots are read)."""

    def cost(cell: tuple[str, str, int, Point]) -> float:
        source, method, seed, point = cell
        cfg = config_for(method, source, Path("."), seed, config_file, overrides, protocol, point)
        return run_cost(method, cfg.train.epochs, cfg.data.shots, protocol, source, targets)

    return cost


def grid_cells(
    sources: list[str],
    methods: list[str],
    seeds: list[int],
    shard: tuple[int, int] | None = None,
    points: list[Point] | None = None,
    cost: Callable[[tuple[str, str, int, Point]], float] | None = None,
) -> list[tuple[str, str, int, Point]]:
    """The grid's (dataset, method, seed, sweep point) cells in run order; with
    ``shard=(K, N)`` the K-th part.

    With ``cost`` (a run's estimate, :mod:`bimors.grid.cost`) the cells are
    dealt longest first to the least-loaded shard; without it cell i belongs to
    shard ``i % N + 1``. Either way a pure function of the grid, so N jobs
    given the same command with ``--shard 1/N`` .. ``N/N`` cover every run
    exactly once, whichever order they start in; within a shard the runs keep
    the grid's order. ``points`` (default: no sweep, ``[()]``) vary faster than
    methods and slower than seeds.
    """
    points = points or [()]
    cells = [
        (src, m, seed, point)
        for src in sources
        for m in methods
        for point in points
        for seed in seeds
    ]
    if shard is None:
        return cells
    k, n = shard
    if n < 1 or not 1 <= k <= n:
        raise ConfigError(f"--shard {k}/{n}: K must be in 1..N")
    if cost is not None:
        owner = shard_of(cells, cost, n)
        return [c for i, c in enumerate(cells) if owner[i] == k - 1]
    return [c for i, c in enumerate(cells) if i % n == k - 1]
