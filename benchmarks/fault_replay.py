"""Replay the faults of issues 11 and 20 on tiny models and fake data; one line per case.

Each case runs real ``bimors`` commands (in this process, through
``bimors.cli.main``) against synthetic scenes, the tiny random-weight models
of ``bimors tiny-models`` and fake dataset layouts, then checks that the
command ended with the right result or with exit status 2 and a one-line
message (never a traceback), and that earlier work is intact.

    python benchmarks/fault_replay.py [--work DIR] [--only 1 3 9]

As root on Linux the disk cases use real tmpfs mounts (a 1 MiB one that fills
up, a read-only one); elsewhere, or with ``BIMORS_FAULTS_SIMULATE=1`` (as the
tests do), they simulate EROFS and a torch write failing on a full disk by
patching the write path. Exit status: 0 when every case passes.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.data.fakes

from bimors.cli import main

CASES: dict[int, Callable[[Path, dict], str]] = {}


class CaseFailed(AssertionError):
    pass


def case(n: int):
    def register(fn):
        CASES[n] = fn
        return fn

    return register


def bimors(*argv: str) -> tuple[int, str]:
    """Run ``bimors ARGV`` in this process: (exit status, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(["-q", *argv])
        except SystemExit as exit_:  # argparse refusing an option
            code = exit_.code if isinstance(exit_.code, int) else 2
    return code, err.getvalue()


def check(cond: bool, what: str) -> None:
    if not cond:
        raise CaseFailed(what)


def one_line_error(code: int, err: str, *words: str) -> str:
    """The error line of a refused command; checks status 2, one line, no traceback."""
    lines = [ln for ln in err.splitlines() if ln.startswith("bimors: error:")]
    check(code == 2, f"exit status {code}, expected 2 (stderr: {err[-300:]!r})")
    check("Traceback" not in err and len(lines) == 1, f"not one error line: {err[-300:]!r}")
    for w in words:
        check(w.lower() in lines[0].lower(), f"message lacks {w!r}: {lines[0]}")
    return lines[0][len("bimors: error: ") :]


def short(msg: str, n: int = 110) -> str:
    return msg if len(msg) <= n else msg[: n - 3] + "..."


# -- the environment ---------------------------------------------------------------------------
def setup(work: Path) -> dict:
    from bimors.data.synthetic import SCENES, generate_scenes
    from bimors.demo.tiny import write_all

    tiny = work / "tiny"
    if not tiny.is_dir():
        write_all(tiny)
    scenes = work / "scenes"
    if not scenes.is_dir():
        generate_scenes(scenes, per_class=12, size=32, classes=list(SCENES)[:4])
    sets = [
        "backbone.adapter=hf",
        f"backbone.model={tiny / 'clip-hf'}",
        "train.device=cpu",
        "train.epochs=2",
        "train.batch_size=4",
        "data.shots=2",
        "data.num_workers=0",
    ]
    return {"tiny": tiny, "scenes": scenes, "sets": [x for s in sets for x in ("--set", s)]}


def copy_scenes(env: dict, dest: Path) -> Path:
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(env["scenes"], dest, ignore=shutil.ignore_patterns("split_*", ".bimors"))
    return dest


def train(env: dict, root: Path, out: Path, *extra: str, method: str = "coop") -> tuple[int, str]:
    return bimors(
        "train", "--method", method, "--dataset", "synthetic", "--root", str(root),
        "--out", str(out), *env["sets"], *extra,
    )  # fmt: skip


def records(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "results.jsonl").read_text().splitlines()]


# -- the cases ---------------------------------------------------------------------------------
@case(1)
def umask(work: Path, env: dict) -> str:
    """Outputs only their owner can read: modes now follow the umask."""
    from bimors.data.synthetic import generate_scenes

    SCENES = ["forest", "river"]
    old = os.umask(0o022)
    try:
        shutil.rmtree(work / "c1-scenes", ignore_errors=True)
        folder = generate_scenes(work / "c1-scenes", per_class=6, size=32, classes=SCENES[:2])
        run = work / "c1-run"
        shutil.rmtree(run, ignore_errors=True)
        code, err = train(env, folder, run)
        check(code == 0, f"train failed: {err[-300:]}")
    finally:
        os.umask(old)
    modes = {
        p.name: stat.S_IMODE(p.stat().st_mode) for p in [*run.iterdir(), *folder.glob("split_*")]
    }
    check(stat.S_IMODE(folder.stat().st_mode) == 0o755, "scene folder is not 0755")
    bad = {k: oct(v) for k, v in modes.items() if not Path(run, k).is_dir() and v != 0o644}
    check(not bad, f"files not 0644 under umask 022: {bad}")
    return (
        f"umask 022 -> scenes folder 0755, {len(modes)} outputs 0644 (split, results, checkpoint)"
    )


@case(2)
def corrupt_images(work: Path, env: dict) -> str:
    """A corrupt image costs a whole run: now refused before training, all named, one fix."""
    root = copy_scenes(env, work / "c2-scenes")
    from bimors.data import build_dataset

    test = build_dataset("synthetic", root).split().test
    bad = [s.relpath for s in test[:7]]
    for r in bad:
        data = (root / r).read_bytes()
        (root / r).write_bytes(data[: len(data) // 3])
    run = work / "c2-run"
    shutil.rmtree(run, ignore_errors=True)
    msg = one_line_error(*train(env, root, run), "7 image(s)", "data.exclude=")
    check(all(r in msg for r in bad), "not every bad file is named")
    check(not (run / "metrics.jsonl").exists(), "it trained anyway")
    listing = msg.split("data.exclude=")[1].split()[0]
    code, err = train(env, root, run, "--set", f"data.exclude={listing}")
    check(code == 0, f"rerun with the exclude list failed: {err[-300:]}")
    check(sum(r["total"] for r in records(run)) == len(test) - 7, "the bad images were evaluated")
    return f"refused before epoch 1: {short(msg, 70)}; rerun with the list (no --overwrite): ok"


@case(3)
def kill_during_eval(work: Path, env: dict) -> str:
    """Preemption during evaluation retrained from epoch 1: now resumes after the last epoch."""
    import bimors.run.experiment as experiment
    from bimors.engine import trainer as trainer_mod

    root = copy_scenes(env, work / "c3-scenes")
    full, killed = work / "c3-full", work / "c3-killed"
    for folder in (full, killed):
        shutil.rmtree(folder, ignore_errors=True)
    check(train(env, root, full)[0] == 0, "uninterrupted run failed")
    real = experiment.evaluate_specs

    class Preempted(BaseException):
        pass

    def preempt(*a, **k):
        raise Preempted

    experiment.evaluate_specs = preempt
    try:
        with contextlib.suppress(Preempted):
            train(env, root, killed)
    finally:
        experiment.evaluate_specs = real
    check((killed / "last.pt").is_file(), "last.pt was deleted before evaluation ended")
    epochs_run = []
    real_step = trainer_mod.Trainer._step_loss

    def counting(self, data, batch):
        epochs_run.append(1)
        return real_step(self, data, batch)

    trainer_mod.Trainer._step_loss = counting
    try:
        code, err = train(env, root, killed)
    finally:
        trainer_mod.Trainer._step_loss = real_step
    check(code == 0, f"rerun failed: {err[-300:]}")
    check(not epochs_run, f"the rerun trained {len(epochs_run)} step(s) again")
    strip = [
        {k: v for k, v in r.items() if k not in ("run", "train_seconds")} for r in records(full)
    ]
    again = [
        {k: v for k, v in r.items() if k not in ("run", "train_seconds")} for r in records(killed)
    ]
    check(strip == again, "resumed results differ from the uninterrupted run")
    check(not (killed / "last.pt").exists(), "last.pt left after the results were written")
    return "killed in evaluation -> rerun trains 0 steps, results equal the uninterrupted run"


@case(4)
def empty_eval(work: Path, env: dict) -> str:
    """An empty evaluation set was a result (0.00): now an error."""
    from bimors.data import build_dataset

    root = copy_scenes(env, work / "c4-scenes")
    test = build_dataset("synthetic", root).split().test
    listing = work / "c4-exclude.txt"
    listing.write_text("".join(s.relpath + "\n" for s in test))
    run = work / "c4-run"
    shutil.rmtree(run, ignore_errors=True)
    msg = one_line_error(*train(env, root, run, "--set", f"data.exclude={listing}"), "no images")
    check(not (run / "results.jsonl").exists(), "a result was written")
    return short(msg)


@case(5)
def relative_paths(work: Path, env: dict) -> str:
    """Relative --root and backbone.model were stored as typed: now absolute."""
    here = work / "c5"
    shutil.rmtree(here, ignore_errors=True)
    here.mkdir()
    copy_scenes(env, here / "syn_small")
    shutil.copytree(env["tiny"] / "clip-hf", here / "tiny" / "clip-hf")
    cwd = os.getcwd()
    try:
        os.chdir(here)
        sets = [s.replace(str(env["tiny"] / "clip-hf"), "tiny/clip-hf") for s in env["sets"]]
        code, err = bimors(
            "train", "--method", "coop", "--dataset", "synthetic", "--root", "syn_small",
            "--out", "run", *sets,
        )  # fmt: skip
        check(code == 0, f"train failed: {err[-300:]}")
        first = records(here / "run")
        os.chdir(work)
        code, err = bimors("eval", str(here / "run"), "--device", "cpu")
        check(code == 0, f"eval from another folder failed: {err[-300:]}")
    finally:
        os.chdir(cwd)
    again = records(here / "run")
    check([r["accuracy"] for r in first] == [r["accuracy"] for r in again], "eval disagrees")
    cfg = (here / "run" / "config.yaml").read_text()
    check(f"root: {here / 'syn_small'}" in cfg, "data.root not absolute in config.yaml")
    check(f"model: {(here / 'tiny' / 'clip-hf').resolve()}" in cfg, "backbone.model not absolute")
    return "config.yaml holds absolute root and model; `bimors eval RUN` from another folder: ok"


@case(6)
def split_escape(work: Path, env: dict) -> str:
    """Split entries could leave the root: now refused, in train and in verify."""
    from bimors.data import build_dataset

    root = copy_scenes(env, work / "c6-scenes")
    split = build_dataset("synthetic", root).split().to_json()
    msgs = []
    for evil in ("../../../../etc/passwd", "/etc/passwd"):
        bad = json.loads(json.dumps(split))
        bad["train"][0][0] = evil
        f = work / "c6-split.json"
        f.write_text(json.dumps(bad))
        msg = one_line_error(
            *train(env, root, work / "c6-run", "--set", f"data.split_file={f}"), evil
        )
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            code = main(["-q", "data", "verify", "synthetic", "--root", str(root),
                         "--split-file", str(f)])  # fmt: skip
        check(code == 1 and evil in out.getvalue(), "verify did not report it")
        msgs.append(msg.split(": ", 1)[1].split(";")[0])
    return "; ".join(short(m, 60) for m in msgs)


@case(7)
def config_values(work: Path, env: dict) -> str:
    """Config values that cannot work are refused before any work, field named."""
    from bimors.methods import build_method
    from bimors.run.config import resolve_config

    cfg = resolve_config("coop", overrides=["train.lr=2e-3", "train.warmup_lr=1e-5"])
    check(cfg.train.lr == 0.002 and cfg.train.warmup_lr == 1e-5, "2e-3 did not parse")
    yml = work / "c7.yaml"
    yml.write_text("train:\n  lr: 1e-5\n")
    check(resolve_config("coop", yml).train.lr == 1e-5, "YAML lr: 1e-5 did not parse")
    root = copy_scenes(env, work / "c7-scenes")
    run = work / "c7-run"
    shutil.rmtree(run, ignore_errors=True)
    refused = {
        "train.lr=.nan": ("train.lr", "finite"),
        "train.warmup_lr=.inf": ("train.warmup_lr", "finite"),
        "train.device=banana": ("train.device", "banana"),
        "features.dir=/proc/nope": ("features.dir", "/proc/nope"),
        "method.name=cocoop": ("method.name", "--method"),
        "data.root=/elsewhere": ("data.root", "--root"),
    }
    for item, words in refused.items():
        one_line_error(*train(env, root, run, "--set", item), *words)
        check(not (run / "metrics.jsonl").exists(), f"{item}: work was done")
    one_line_error(*train(env, root, run, "--set", "method.n_ctx=8", method="cocoop"), "n_ctx=8")
    from bimors.backbones import load_backbone
    from bimors.core.errors import ConfigError

    backbone = load_backbone("hf", str(env["tiny"] / "clip-hf"))
    try:
        build_method("bimors", backbone, ["a", "b"], {"heads": 3}, caption_dim=8)
        raise CaseFailed("heads=3 built")
    except ConfigError as err:
        check("method.heads=3" in str(err), f"heads message: {err}")
    # a failed start (bad image check, bad method option) must not block the corrected rerun
    one_line_error(*train(env, root, run, "--set", "method.n_ctx=8", method="cocoop"), "n_ctx")
    code, err = train(env, root, run, method="cocoop")
    check(code == 0, f"corrected rerun refused: {err[-300:]}")
    return "2e-3, YAML 1e-5 parse; .nan .inf banana /proc/nope heads=3 n_ctx refused; rerun ok"


@case(8)
def exclusions(work: Path, env: dict) -> str:
    """Exclusions reach captioning; a custom split for a published dataset has a CLI option."""
    from bimors.captions.store import CaptionStore
    from bimors.data import DATASETS, build_dataset
    from bimors.demo.tiny import minilm_path
    from tests.data.fakes import fake_dataset

    root = copy_scenes(env, work / "c8-scenes")
    test = build_dataset("synthetic", root).split().test
    broken = test[0].relpath
    (root / broken).write_bytes(b"not an image")
    listing = work / "c8-exclude.txt"
    listing.write_text(broken + "\n")
    store = work / "c8-store.sqlite"
    code, err = bimors(
        "caption", "--dataset", "synthetic", "--root", str(root), "--store", str(store),
        "--captioner", str(env["tiny"] / "blip2"), "--encoder", str(minilm_path()),
        "--device", "cpu", "--num-beams", "1", "--max-new-tokens", "4", "--exclude", str(listing),
    )  # fmt: skip
    check(code == 0, f"caption with --exclude failed: {err[-300:]}")
    with CaptionStore(store, readonly=True) as s:
        check(broken not in set(s.keys()) and not s.failures(), "the excluded file was captioned")
    pn = work / "c8-patternnet"
    shutil.rmtree(pn, ignore_errors=True)
    split_file = fake_dataset(DATASETS.get("patternnet"), pn, per_class=3)
    code, err = bimors(
        "data", "verify", "patternnet", "--root", str(pn), "--split-file", str(split_file),
        "--no-fetch", "--custom-split",
    )  # fmt: skip
    check(code == 0, f"verify --custom-split failed: {err[-300:]}")
    from bimors.data import dataset_options
    from bimors.run.config import resolve_config

    cfg = resolve_config(
        "coop", overrides=[f"data.split_file={split_file}", "data.check_split=false"]
    )
    ds = build_dataset("patternnet", pn, **dataset_options(cfg.data))
    check(len(ds.split().train) == 38, "custom split not used")
    return "caption --exclude skips the bad file; data.check_split=false / --custom-split accepted"


@contextlib.contextmanager
def tmpfs(where: Path, size: str, readonly: bool = False):
    """A real tmpfs (root only); yields False where mounting is not possible."""
    where.mkdir(parents=True, exist_ok=True)
    simulate = os.environ.get("BIMORS_FAULTS_SIMULATE") == "1"
    if simulate or sys.platform != "linux" or os.geteuid() != 0:
        yield False
        return
    opts = f"size={size}" + (",ro" if readonly else "")
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)]).returncode == 0
    try:
        yield ok
    finally:
        if ok:
            subprocess.run(["umount", str(where)])


@case(9)
def disks(work: Path, env: dict) -> str:
    """Read-only and full disks say so, lose nothing; stale .tmp removed; broken model refused."""
    import bimors.core.atomic as atomic

    root = copy_scenes(env, work / "c9-scenes")
    for name in ("c9-run", "c9-resume", "c9-fullsim"):  # a rerun of the script starts clean
        shutil.rmtree(work / name, ignore_errors=True)
    run = work / "c9-run"
    check(train(env, root, run)[0] == 0, "first run failed")
    before = (run / "results.jsonl").read_text()
    notes = []
    # a read-only run folder: eval refuses before computing; results intact
    with tmpfs(work / "c9-ro", "4m", readonly=True) as real:
        if real:
            subprocess.run(["mount", "-o", "remount,rw", str(work / "c9-ro")], check=True)
            shutil.copytree(run, work / "c9-ro" / "run")
            subprocess.run(["mount", "-o", "remount,ro", str(work / "c9-ro")], check=True)
            msg = one_line_error(
                *bimors("eval", str(work / "c9-ro" / "run"), "--device", "cpu"), "read-only"
            )
            code, err = train(env, root, work / "c9-ro" / "new")
            one_line_error(code, err, "read-only")
            notes.append("real read-only mount")
        else:
            real_replace = os.replace
            os.replace = lambda *a: (_ for _ in ()).throw(OSError(errno.EROFS, "Read-only"))
            try:
                msg = one_line_error(*bimors("eval", str(run), "--device", "cpu"), "read-only")
            finally:
                os.replace = real_replace
            notes.append("simulated EROFS")
    check((run / "results.jsonl").read_text() == before, "results changed")
    # the disk fills while eval writes its records: the message carries the results
    from bimors.core.errors import StorageError
    from bimors.engine.rundir import RunDir

    real_add = RunDir.add_records

    def full(self, new):
        raise StorageError(f"disk full: cannot write {self.results_file}")

    RunDir.add_records = full
    try:
        lost = one_line_error(*bimors("eval", str(run), "--device", "cpu"), "disk full", "%")
    finally:
        RunDir.add_records = real_add
    r0 = records(run)[0]
    check(f"{r0['accuracy']:.2f}%" in lost, f"computed results not in the message: {lost}")
    # a full disk during training: one line, earlier files intact, rerun completes
    with tmpfs(work / "c9-full", "1m") as real:
        full_run = work / "c9-full" / "run"
        if real:
            filler = work / "c9-full" / "filler"
            code, err = 0, ""
            free = shutil.disk_usage(work / "c9-full").free
            filler.write_bytes(b"\0" * max(0, free - 24 * 1024))
            code, err = train(env, root, full_run)
            msg_full = one_line_error(code, err, "disk full")
            filler.unlink()
            notes.append("real 1 MiB tmpfs")
        else:
            full_run = work / "c9-fullsim"
            import torch

            real_save = torch.save
            torch.save = lambda *a, **k: (_ for _ in ()).throw(
                RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos")
            )
            atomic_full = atomic.disk_full
            atomic.disk_full = lambda folder: True
            try:
                msg_full = one_line_error(*train(env, root, full_run), "disk full")
            finally:
                torch.save, atomic.disk_full = real_save, atomic_full
            notes.append("simulated ENOSPC")
        code, err = train(env, root, full_run)
        check(code == 0, f"rerun after freeing space failed: {err[-300:]}")
    # a killed checkpoint write left a 0-byte temp file: the rerun removes it
    resume = work / "c9-resume"
    check(train(env, root, resume)[0] == 0, "run failed")
    meta = json.loads((resume / "meta.json").read_text())
    (resume / "meta.json").write_text(json.dumps({**meta, "status": "running"}))
    stale = resume / f".last.pt.{atomic._HOST}.{2**22 + 7}.0badc0de.tmp"
    stale.write_bytes(b"")
    check(train(env, root, resume)[0] == 0, "resume failed")
    check(not stale.exists(), "the stale .tmp file is still there")
    # a finished run whose checkpoint is truncated is not "skipped"
    ckpt = run / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    msg_ckpt = one_line_error(*train(env, root, run), "checkpoint", "--overwrite")
    check((run / "results.jsonl").read_text() == before, "results lost")
    return f"{', '.join(notes)}: {short(msg_full, 45)} | {short(msg, 45)} | {short(msg_ckpt, 40)}"


@case(10)
def verify_partial(work: Path, env: dict) -> str:
    """`data verify` on a partial copy printed every line and no summary."""
    from bimors.data import DATASETS
    from tests.data.fakes import fake_dataset

    pn = work / "c10-patternnet"
    shutil.rmtree(pn, ignore_errors=True)
    split_file = fake_dataset(DATASETS.get("patternnet"), pn, per_class=30)
    for c in DATASETS.get("patternnet").classes[10:]:
        shutil.rmtree(pn / "images" / c)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(
            ["-q", "data", "verify", "patternnet", "--root", str(pn), "--split-file",
             str(split_file), "--custom-split", "--no-fetch"]
        )  # fmt: skip
    lines = out.getvalue().splitlines()
    check(code == 1, f"status {code}")
    check(len(lines) < 40, f"{len(lines)} lines printed")
    check(lines[-1].startswith("patternnet: ") and "error(s)" in lines[-1], "no summary last")
    return f"{len(lines)} lines for {28 * 30 + 28} problems; last: {short(lines[-1], 60)}"


# -- issue 20: bad inputs (one line, never a traceback) and signals -----------------------------
def _bomb_png(path: Path, side: int = 20000) -> Path:
    """A PNG whose header says side x side; the pixels are never there."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    sig = b"\x89PNG\r\n\x1a\n"
    path.write_bytes(sig + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def _first_image(root: Path) -> Path:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in (".png", ".jpg"))[0]


@case(11)
def decompression_bomb(work: Path, env: dict) -> str:
    """A PNG whose header says 20000 x 20000 crashed train and predict: now a bad image."""
    root = copy_scenes(env, work / "c11-scenes")
    first = _first_image(root)
    for image in sorted(first.parent.iterdir()):  # the whole class: some are surely used
        bomb = _bomb_png(image)
    shutil.rmtree(work / "c11-run", ignore_errors=True)
    code, err = train(env, root, work / "c11-run")
    line = one_line_error(code, err, "too many pixels", "exclude")
    run = work / "c11-zeroshot"
    shutil.rmtree(run, ignore_errors=True)
    check(train(env, env["scenes"], run, method="zeroshot")[0] == 0, "zero-shot run failed")
    code, err = bimors("predict", str(run), str(bomb), "--device", "cpu")
    one_line_error(code, err, bomb.name)
    return f"train and predict name it: {short(line, 70)}"


@case(12)
def garbage_lock(work: Path, env: dict) -> str:
    """A lock file holding garbage was 'being filled by another process' forever."""
    import logging

    from bimors.core.locks import RunLock, lock_path

    guarded = work / "c12-store.sqlite"
    lock_path(guarded).write_bytes(os.urandom(64))
    seen = io.StringIO()
    handler = logging.StreamHandler(seen)
    logging.getLogger("bimors.core.locks").addHandler(handler)
    try:
        lock = RunLock(guarded, "caption store")
        check(lock.acquire(), "a garbage lock was not taken over")
        lock.release()
    finally:
        logging.getLogger("bimors.core.locks").removeHandler(handler)
    check(str(lock_path(guarded)) in seen.getvalue(), "the stale lock was not named")
    return "garbage lock judged stale, named, taken over"


@case(13)
def root_is_a_file(work: Path, env: dict) -> str:
    """`--root` naming a file said "does not exist"."""
    f = work / "c13-scenes.zip"
    f.write_bytes(b"PK\x03\x04")
    line = one_line_error(*train(env, f, work / "c13-run"), "is a file")
    return short(line, 80)


@case(14)
def dangling_symlink(work: Path, env: dict) -> str:
    """A dangling symlink image was left out and appeared nowhere."""
    root = copy_scenes(env, work / "c14-scenes")
    first = _first_image(root)
    link = first.with_name("dangling.png")
    link.symlink_to(work / "c14-gone.png")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(["-q", "data", "verify", "synthetic", "--root", str(root), "--no-decode"])
    text = out.getvalue()
    check("Traceback" not in text and code in (0, 1), f"status {code}")
    check("dangling" in text and link.name in text, "the dangling link is not listed")
    return "listed by data verify (and kept in data.json as dangling_links)"


@case(15)
def non_utf8_names(work: Path, env: dict) -> str:
    """A file or class folder with a non-UTF-8 name raised UnicodeEncodeError."""
    root = copy_scenes(env, work / "c15-scenes")
    first = _first_image(root)
    shutil.copy(first, first.with_name(os.fsdecode(b"caf\xe9.png")))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["-q", "data", "verify", "synthetic", "--root", str(root), "--no-decode"])
    check(
        code == 1 and "Traceback" not in err.getvalue(), f"status {code}: {err.getvalue()[-200:]}"
    )
    check("caf\\xe9.png" in out.getvalue(), "the name is not shown escaped")
    line = one_line_error(*train(env, root, work / "c15-run"), "not valid UTF-8")
    return f"verify names it; train: {short(line, 60)}"


@case(16)
def damaged_caption_store(work: Path, env: dict) -> str:
    """4 KB of garbage in a caption store: `captions verify` crashed with sqlite3.DatabaseError."""
    import numpy as np

    from bimors.captions.store import CaptionStore

    path = work / "c16-captions.sqlite"
    path.unlink(missing_ok=True)
    prov = {"captioner": "x", "encoder": "y", "pooling": "masked-mean", "dim": 64}
    store = CaptionStore.open_or_create(path, prov)
    store.commit(
        [(f"c/{i}.png", f"h{i}", f"caption {i} " * 20, np.ones(64, np.float32)) for i in range(400)]
    )
    store.close()
    data = bytearray(path.read_bytes())
    middle = len(data) // 2 // 4096 * 4096
    data[middle : middle + 4096] = os.urandom(4096)
    path.write_bytes(bytes(data))
    line = one_line_error(*bimors("captions", "verify", str(path), "--root", str(work)), "damaged")
    return short(line, 80)


@case(17)
def sigterm(work: Path, env: dict) -> str:
    """SIGTERM (SLURM preemption) left the run lock and no message: now a clean stop and resume."""
    import torch

    from bimors.core.locks import lock_path
    from bimors.engine.checkpoint import read_checkpoint

    root = copy_scenes(env, work / "c17-scenes")

    def launch(out: Path, pause: str | None) -> subprocess.CompletedProcess:
        env_ = {**os.environ, "OMP_NUM_THREADS": "1"}
        env_.pop("BIMORS_TEST_PAUSE", None)
        if pause:
            env_["BIMORS_TEST_PAUSE"] = pause
        cmd = [sys.executable, "-m", "bimors", "-q", "run", "--protocol", "base2new",
               "--method", "coop", "--dataset", "synthetic", "--seeds", "1", "--root", str(root),
               "--out", str(out), *env["sets"], "--set", "train.batch_size=1"]  # fmt: skip
        return subprocess.run(cmd, capture_output=True, text=True, env=env_, check=False)

    full, stopped = work / "c17-full", work / "c17-stopped"
    for folder in (full, stopped):
        shutil.rmtree(folder, ignore_errors=True)
    check(launch(full, None).returncode == 0, "uninterrupted run failed")
    cell = Path("base2new", "synthetic", "coop", "seed1")  # the grid's run folder
    proc = launch(stopped, "SIGTERM@5")  # inside epoch 2 (four steps an epoch)
    last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
    check(proc.returncode == 143, f"exit status {proc.returncode}: {proc.stderr[-300:]}")
    check(last.startswith("bimors: stopped by SIGTERM after epoch "), f"last line: {last!r}")
    check((stopped / cell / "last.pt").is_file(), "no last.pt")
    check(not lock_path(stopped / cell).exists(), "the run lock was left behind")
    check(launch(stopped, None).returncode == 0, "the rerun failed")
    a = read_checkpoint(full / cell / "checkpoint.pt")["state"]
    b = read_checkpoint(stopped / cell / "checkpoint.pt")["state"]
    check(all(torch.equal(a[k], b[k]) for k in a), "the resumed weights differ")
    return f"{short(last, 70)}; rerun bit-equal"


#: Cases quick enough for every CI run (the signal case runs three trainings).
FAST = [n for n in CASES if n != 17]


def run_cases(work: Path, only: list[int] | None) -> int:
    env = setup(work)
    failed = 0
    for n, fn in CASES.items():
        if only and n not in only:
            continue
        try:
            note = fn(work, env)
            print(f"{n:2d} PASS {fn.__name__}: {note}", flush=True)
        except (Exception, SystemExit) as err:  # a failed case must let the others run
            failed += 1
            where = traceback.format_exc(limit=-2).strip().splitlines()[-1]
            print(f"{n:2d} FAIL {fn.__name__}: {err!r} [{where}]", flush=True)
    print(f"{len(CASES) - failed if not only else len(only) - failed} passed, {failed} failed")
    return 1 if failed else 0


def main_cli() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--work", type=Path, help="work folder (default: a temporary one)")
    p.add_argument("--only", type=int, nargs="*", help="case numbers to run")
    args = p.parse_args()
    os.environ.setdefault("BIMORS_CACHE", str((args.work or Path(tempfile.gettempdir())) / "cache"))
    if args.work:
        args.work.mkdir(parents=True, exist_ok=True)
        os.environ["BIMORS_CACHE_DIR"] = str(args.work / "features")
        return run_cases(args.work.resolve(), args.only)
    with tempfile.TemporaryDirectory(prefix="bimors-faults-") as tmp:
        os.environ["BIMORS_CACHE"] = str(Path(tmp) / "cache")
        os.environ["BIMORS_CACHE_DIR"] = str(Path(tmp) / "features")
        return run_cases(Path(tmp), args.only)


if __name__ == "__main__":
    sys.exit(main_cli())
