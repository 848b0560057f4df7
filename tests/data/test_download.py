"""Checksummed, resumable downloads against a loopback HTTP server; safe extraction."""

from __future__ import annotations

import hashlib
import io
import zipfile

import pytest

from bimors.core.errors import DataError
from bimors.data import published
from bimors.data.download import download_file, extract_archive
from bimors.data.published import PublishedSplit, fetch_split, resolve_split_file

PAYLOAD = bytes(range(256)) * 400  # 100 KiB
SHA = hashlib.sha256(PAYLOAD).hexdigest()
MD5 = hashlib.md5(PAYLOAD).hexdigest()


def test_download_resumes_with_http_range(http_server, tmp_path):
    http_server.files["/a.bin"] = PAYLOAD
    dest = tmp_path / "a.bin"
    (tmp_path / "a.bin.part").write_bytes(PAYLOAD[:30000])
    assert download_file([f"{http_server.url}/a.bin"], dest, sha256=SHA) == dest
    assert dest.read_bytes() == PAYLOAD and not (tmp_path / "a.bin.part").exists()
    assert http_server.requests == [("/a.bin", "bytes=30000-")]


def test_download_restarts_when_the_server_ignores_range(http_server, tmp_path):
    http_server.files["/a.bin"] = PAYLOAD
    http_server.honour_range = False
    (tmp_path / "a.bin.part").write_bytes(b"x" * 5000)  # stale bytes must not survive
    download_file([f"{http_server.url}/a.bin"], tmp_path / "a.bin", md5=MD5)
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD


def test_complete_part_answered_416_is_checked_and_kept(http_server, tmp_path):
    http_server.files["/a.bin"] = PAYLOAD
    (tmp_path / "a.bin.part").write_bytes(PAYLOAD)
    download_file([f"{http_server.url}/a.bin"], tmp_path / "a.bin", sha256=SHA)
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD


def test_checksum_mismatch_removes_the_partial_file(http_server, tmp_path):
    http_server.files["/a.bin"] = PAYLOAD[:-1] + b"\x00"
    with pytest.raises(DataError, match=r"SHA256 of .* expected") as err:
        download_file([f"{http_server.url}/a.bin"], tmp_path / "a.bin", sha256=SHA)
    assert "run the command again" in str(err.value)
    assert not (tmp_path / "a.bin.part").exists() and not (tmp_path / "a.bin").exists()


def test_falls_back_to_the_next_mirror_and_reports_all_failures(http_server, tmp_path):
    http_server.files["/good.bin"] = PAYLOAD
    urls = [f"{http_server.url}/missing.bin", f"{http_server.url}/good.bin"]
    download_file(urls, tmp_path / "a.bin", sha256=SHA)
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD
    with pytest.raises(DataError, match=r"missing.bin.*404"):
        download_file([f"{http_server.url}/missing.bin"], tmp_path / "b.bin", sha256=SHA)


def test_existing_file_with_wrong_checksum_is_not_overwritten(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"mine")
    with pytest.raises(DataError, match="delete"):
        download_file(["http://127.0.0.1:9/a.bin"], tmp_path / "a.bin", sha256=SHA)
    assert (tmp_path / "a.bin").read_bytes() == b"mine"
    with pytest.raises(ValueError, match="sha256 or md5"):
        download_file(["http://127.0.0.1:9/a.bin"], tmp_path / "c.bin")


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_extract_is_idempotent_and_refuses_clashes_and_unsafe_paths(tmp_path):
    archive = tmp_path / "x.zip"
    archive.write_bytes(_zip({"X/images/a/1.txt": b"1"}))
    root = tmp_path / "root"
    extract_archive(archive, root)
    assert (root / "X" / "images" / "a" / "1.txt").read_bytes() == b"1"
    extract_archive(archive, root)  # marker: second call does nothing
    other = tmp_path / "y.zip"
    other.write_bytes(_zip({"X/other.txt": b"2"}))
    with pytest.raises(DataError, match="already exists"):
        extract_archive(other, root)
    evil = tmp_path / "evil.zip"
    evil.write_bytes(_zip({"../evil.txt": b"!"}))
    with pytest.raises(DataError, match="unsafe"):
        extract_archive(evil, root)
    assert not (tmp_path / "evil.txt").exists()
    assert not [p for p in root.iterdir() if p.name.startswith(".x.zip.") and p.is_dir()]


def test_published_split_is_fetched_into_the_cache_and_checked(
    http_server, monkeypatch, tmp_path, isolated_cache
):
    body = b'{"train": [], "val": [], "test": []}'
    spec = PublishedSplit("toy.json", hashlib.sha256(body).hexdigest(), (0, 0, 0))
    monkeypatch.setattr(published, "SPLIT_URLS", (f"{http_server.url}/json/{{file}}",))
    http_server.files["/json/toy.json"] = body
    path = resolve_split_file(spec, tmp_path)
    assert path == isolated_cache / "splits" / "toy.json" and path.read_bytes() == body
    assert resolve_split_file(spec, tmp_path) == path  # cached: no second request
    assert len(http_server.requests) == 1
    path.unlink()
    http_server.files["/json/toy.json"] = body + b" "
    with pytest.raises(DataError, match=r"SHA256 of .*toy.json"):
        fetch_split(spec)
