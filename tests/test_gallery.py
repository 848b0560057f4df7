"""``bimors gallery``: the error page of a run, checked against the run's own confusion matrix."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from bimors.cli import main
from bimors.data.base import prompt_names
from bimors.report.gallery import Scored, confusions, gallery_html
from tests.test_experiments import _records, env, trained_run  # noqa: F401 (fixtures)


@pytest.fixture(scope="module")
def gallery(env, trained_run, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("gallery") / "errors.html"
    assert main(
        ["-q", "gallery", str(trained_run), "--out", str(out), "--store",
         f"synthetic={env['store']}", "--per-pair", "3", "--device", "cpu"]
    ) == 0  # fmt: skip
    return out


def _sections(text):
    return re.split(r"<h2>", text)[1:]


def test_the_page_shows_the_runs_confusions_with_images_and_captions(trained_run, gallery):  # noqa: F811
    text = gallery.read_text()
    assert (
        "http://" not in text and "https://" not in text and "<link" not in text
    )  # self-contained
    records = {r["split"]: r for r in _records(trained_run) if r.get("confusion")}
    sections = _sections(text)
    assert len(sections) == 2  # base and new classes
    for section in sections:
        split = "base" if section.startswith("synthetic, base") else "new"
        record = records[split]
        # the page names classes as prompts do ("dense residential"), records as folders do
        names, matrix = prompt_names(record["class_names"]), record["confusion"]
        want = sorted(
            ((names[t], names[p], matrix[t][p]) for t in range(len(names))
             for p in range(len(names)) if t != p and matrix[t][p]),
            key=lambda x: (-x[2], names.index(x[0]), names.index(x[1])),
        )  # fmt: skip
        got = [
            (a, b, int(n))
            for a, b, n in re.findall(r"<h3>(.+?) &rarr; (.+?): (\d+) image", section)
        ]
        assert got == want[:12]
        thumbs = section.count("<img src='data:image/jpeg;base64,")
        assert thumbs == sum(min(n, 3) for _, _, n in got)
        wrong = sum(n for *_, n in want)
        assert f"{record['total']} test images, {wrong} misclassified" in section
        assert section.count("<tr><td>") == len(names)  # per-class rows
    assert "class='cap'>&ldquo;" in text  # BiMoRS reads captions: they are shown


def test_confusions_are_counted_and_ordered():
    items = [Scored(None, str(i), t, p, [0.0, 0.0, 0.0]) for i, (t, p) in
             enumerate([(0, 1), (0, 1), (2, 1), (1, 1), (2, 0), (2, 0), (2, 0)])]  # fmt: skip
    assert confusions(items) == [((2, 0), 3), ((0, 1), 2), ((2, 1), 1)]
    page = gallery_html("t", "", ["a", "b", "c"], [s for s in items if s.true == s.pred])
    assert "No mistakes on this split." in page


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_the_page_renders_in_headless_chromium(gallery, tmp_path):
    shot = tmp_path / "gallery.png"
    done = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
         "--window-size=1200,1400", gallery.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    from PIL import Image

    image = Image.open(shot).convert("L")
    lo, hi = image.getextrema()
    assert image.size == (1200, 1400) and hi - lo > 100  # something was drawn, not a blank page
