"""``bimors data list|download|verify`` end to end, offline (a loopback server stands in)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from bimors.cli import main
from bimors.data import DATASETS, build_dataset, published
from bimors.data.info import Archive
from bimors.data.ucmerced import UCMerced
from tests.data.fakes import fake_dataset
from tests.data.test_bad_data import damage
from tests.data.test_published_splits import REF


def test_list_shows_every_dataset_with_classes_and_sizes(capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    for name in DATASETS.names():
        assert name in out
    assert "patternnet         38   30400" in out and "manual" in out and "auto" in out


def test_list_reports_status_under_a_data_folder(tmp_path, capsys):
    fake_dataset(DATASETS.get("eurosat"), tmp_path / "EuroSAT")
    assert main(["data", "list", "--root", str(tmp_path)]) == 0
    lines = {ln.split()[0]: ln for ln in capsys.readouterr().out.splitlines()}
    assert "incomplete" in lines["eurosat"] and "30 images, 27000 expected" in lines["eurosat"]
    assert lines["aid"].rstrip().endswith("missing")


def test_list_one_dataset_in_full(capsys):
    assert main(["data", "list", "rsicd"]) == 0
    out = capsys.readouterr().out
    assert "licence:" in out and "citation:" in out and "layout:" in out
    assert "'denseresidential' -> 'dense residential'" in out
    assert DATASETS.get("rsicd").published.sha256 in out


def _fake_ucmerced_zip(tmp_path: Path) -> bytes:
    src = tmp_path / "src"
    fake_dataset(UCMerced, src, image_dir="UCMerced_LandUse/Images")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in sorted(src.rglob("*.tif")):
            zf.write(f, f.relative_to(src).as_posix())
    return buf.getvalue()


def test_download_resumes_checks_and_extracts(http_server, monkeypatch, tmp_path, capsys):
    payload = _fake_ucmerced_zip(tmp_path)
    http_server.files["/UCMerced_LandUse.zip"] = payload
    archive = Archive(
        urls=(f"{http_server.url}/UCMerced_LandUse.zip",),
        filename="UCMerced_LandUse.zip",
        sha256=hashlib.sha256(payload).hexdigest(),
    )
    monkeypatch.setattr(UCMerced, "info", dataclasses.replace(UCMerced.info, archive=archive))
    root = tmp_path / "UCMerced"
    root.mkdir()
    (root / "UCMerced_LandUse.zip.part").write_bytes(payload[:1000])  # an interrupted download
    assert main(["data", "download", "ucmerced", "--root", str(root)]) == 0
    assert http_server.requests == [("/UCMerced_LandUse.zip", "bytes=1000-")]
    assert "checksum checked" in capsys.readouterr().out
    ds = build_dataset("ucmerced", root)
    assert ds.image_root == root / "UCMerced_LandUse" / "Images"
    assert ds.split().counts() == (21, 21, 21)
    assert main(["data", "verify", "ucmerced", "--root", str(root)]) == 0
    # a second download finds the archive complete and does not fetch again
    assert main(["data", "download", "ucmerced", "--root", str(root)]) == 0
    assert len(http_server.requests) == 1


def test_download_with_a_corrupt_source_fails_cleanly(http_server, monkeypatch, tmp_path, capsys):
    http_server.files["/UCMerced_LandUse.zip"] = b"not the archive"
    archive = Archive(
        urls=(f"{http_server.url}/UCMerced_LandUse.zip",),
        filename="UCMerced_LandUse.zip",
        sha256="0" * 64,
    )
    monkeypatch.setattr(UCMerced, "info", dataclasses.replace(UCMerced.info, archive=archive))
    assert main(["data", "download", "ucmerced", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "SHA256" in err and "run the command again" in err
    assert not list(tmp_path.glob("*.part"))


def test_download_of_a_manual_dataset_says_what_to_do(tmp_path, capsys):
    assert main(["data", "download", "aid", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "manual step" in err and "https://captain-whu.github.io/AID/" in err
    assert "bimors data verify aid" in err


@pytest.mark.skipif(REF is None, reason="no reference copy of the published splits")
def test_download_fetches_and_checks_the_published_split(
    http_server, monkeypatch, tmp_path, capsys, isolated_cache
):
    monkeypatch.setattr(published, "SPLIT_URLS", (f"{http_server.url}/json/{{file}}",))
    http_server.files["/json/rsicd.json"] = (REF / "rsicd.json").read_bytes()
    assert main(["data", "download", "rsicd", "--root", str(tmp_path)]) == 1  # images: manual
    out, err = capsys.readouterr()
    assert str(isolated_cache / "splits" / "rsicd.json") in out and "manual step" in err


def test_verify_lists_every_problem_then_accepts_an_explicit_exclude(tmp_path, capsys):
    root = tmp_path / "EuroSAT"
    fake_dataset(DATASETS.get("eurosat"), root, per_class=4)
    build_dataset("eurosat", root).split()
    bad = damage(root)
    shutil_restore = bad["missing_class"]
    exclude = tmp_path / "exclude.txt"
    assert (
        main(["data", "verify", "eurosat", "--root", str(root), "--write-exclude", str(exclude)])
        == 1
    )
    out = capsys.readouterr().out
    for key in ("empty", "truncated", "not_image", "missing_file", "missing_class", "extra_class"):
        assert str(bad[key]) in out, key
    assert "10 error(s)" in out
    # fix the layout, leave the bad images out on purpose: verify passes, loading too
    fake_dataset(DATASETS.get("eurosat"), tmp_path / "fresh", per_class=4)
    (tmp_path / "fresh" / "images" / "SeaLake").rename(shutil_restore)
    (bad["extra_class"] / "cloud_0.jpg").unlink()
    bad["extra_class"].rmdir()
    listed = exclude.read_text().split()
    assert "Forest/Forest_1.jpg" in listed and "Pasture/Pasture_2.jpg" in listed
    exclude.write_text("".join(r + "\n" for r in listed if not r.startswith("SeaLake/")))
    assert main(["data", "verify", "eurosat", "--root", str(root), "--exclude", str(exclude)]) == 0
    assert "excluded 4" in capsys.readouterr().out
    ds = build_dataset("eurosat", root, exclude=exclude)
    assert sum(ds.split().counts()) == 36 and len(ds.excluded) == 4


def test_verify_without_decoding_and_unknown_names(tmp_path, capsys):
    fake_dataset(DATASETS.get("eurosat"), tmp_path)
    assert main(["data", "verify", "eurosat", "--root", str(tmp_path), "--no-decode"]) == 0
    assert "decoded 0 image(s)" in capsys.readouterr().out
    assert main(["data", "verify", "nope", "--root", str(tmp_path)]) == 2
    assert "valid datasets" in capsys.readouterr().err
