"""A small report end to end: both files, self-contained HTML, tables, CSV, escaping, atomicity."""

from __future__ import annotations

import base64
import csv
import io
import math
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from notsure.errors import ConfigError
from notsure.io import RunFolder
from notsure.reports import Report, fmt
from notsure.reports.figures import bar_figure, plt

ROWS = [
    {"class": "zero", "n": 12345, "rate": 0.0625},
    {"class": "one", "n": 7, "rate": float("nan")},
]
IMAGES = [np.arange(28 * 28, dtype=np.uint16).reshape(28, 28).astype(np.uint8),
          np.full((5, 7), 200, dtype=np.uint8)]


@pytest.fixture
def run(tmp_path: Path) -> RunFolder:
    return RunFolder("demo", tmp_path / "run", seed=3, argv=["notsure", "demo"])


def _build(run: RunFolder) -> Report:
    report = Report("Demo", run)
    report.section("Results")
    report.paragraph("Accuracy was **high** for `not_sure` <b>counts</b>.")
    report.table(ROWS, caption="Per class <script>alert(1)</script>", csv="tables/per_class.csv")
    report.figure(bar_figure(["a", "b"], [3, 5]), "figures/bars.png",
                  caption="Bars <script>x</script>")
    report.gallery(IMAGES, ["first", "second <i>"], name_prefix="figures/img", scale=4)
    return report


def _data_uris(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_writes_markdown_and_a_self_contained_html(run: RunFolder) -> None:
    md_path, html_path = _build(run).write()
    assert md_path == run.path / "report.md" and html_path == run.path / "report.html"
    page = html_path.read_text("utf-8")
    srcs = re.findall(r'src="([^"]*)"', page)
    assert len(srcs) == 3 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "<link" not in page and "<script" not in page and "http" not in page
    # The embedded figure is the PNG saved in the run folder; gallery images are upscaled copies.
    pngs = _data_uris(page)
    assert pngs[0] == (run.path / "figures/bars.png").read_bytes()
    for png, image in zip(pngs[1:], IMAGES, strict=True):
        decoded = np.asarray(Image.open(io.BytesIO(png)))
        np.testing.assert_array_equal(decoded, np.kron(image, np.ones((4, 4), np.uint8)))
    fig_png = Image.open(io.BytesIO(pngs[0]))
    assert fig_png.format == "PNG" and min(fig_png.size) > 100


def test_markdown_links_the_saved_pngs(run: RunFolder) -> None:
    md_path, _ = _build(run).write()
    md = md_path.read_text("utf-8")
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert linked == ["figures/bars.png", "figures/img_000.png", "figures/img_001.png"]
    for name in linked:
        assert Image.open(run.path / name).format == "PNG"
    assert Image.open(run.path / "figures/img_001.png").size == (7 * 4, 5 * 4)
    assert set(linked) <= set(run.manifest["artifacts"])


def test_table_values_in_both_outputs_and_the_csv(run: RunFolder) -> None:
    md_path, html_path = _build(run).write()
    md, page = md_path.read_text("utf-8"), html_path.read_text("utf-8")
    for text in (md, page):
        assert "12,345" in text and fmt.num(0.0625) in text
    assert re.search(r"\|\s*one\s*\|\s*7\s*\|\s*—\s*\|", md)
    assert re.search(r"<td>one</td>\s*<td class=\"num\">7</td>\s*<td class=\"num\">—</td>", page)
    with open(run.path / "tables/per_class.csv", newline="") as fh:
        got = list(csv.DictReader(fh))
    assert [r["class"] for r in got] == ["zero", "one"]
    assert [int(r["n"]) for r in got] == [12345, 7]
    assert float(got[0]["rate"]) == 0.0625 and got[1]["rate"] == ""
    assert math.isnan(ROWS[1]["rate"])


def test_text_is_escaped_in_html(run: RunFolder) -> None:
    _, html_path = _build(run).write()
    page = html_path.read_text("utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;counts&lt;/b&gt;" in page and "second &lt;i&gt;" in page
    assert "<strong>high</strong>" in page and "<code>not_sure</code>" in page


def test_a_failure_while_writing_leaves_no_report(run: RunFolder, monkeypatch) -> None:
    report = _build(run)

    def broken(self: Report) -> str:
        raise RuntimeError("render failed")

    monkeypatch.setattr(Report, "render_html", broken)
    with pytest.raises(RuntimeError, match="render failed"):
        report.write()
    assert not (run.path / "report.html").exists()
    assert not (run.path / "report.md").exists()


def test_a_failure_mid_file_leaves_no_partial_file(run: RunFolder, monkeypatch) -> None:
    report = _build(run)
    real = Path.write_bytes

    def half_then_fail(self: Path, data: bytes) -> int:
        real(self, data[: len(data) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_bytes", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        report.write()
    monkeypatch.undo()
    assert sorted(p.name for p in run.path.iterdir()) == ["figures", "manifest.json", "tables"]


def test_a_failing_figure_is_closed_and_leaves_no_file(run: RunFolder) -> None:
    fig = bar_figure(["a"], [1])

    def broken(*args, **kwargs):
        raise RuntimeError("savefig failed")

    fig.savefig = broken
    with pytest.raises(RuntimeError, match="savefig failed"):
        Report("x", run).figure(fig, "figures/f.png")
    assert not plt.fignum_exists(fig.number)
    assert not list((run.path / "figures").glob("*"))


def test_figures_are_closed_after_saving(run: RunFolder) -> None:
    before = len(plt.get_fignums())
    report = Report("x", run)
    for i in range(3):
        report.figure(bar_figure(["a"], [i]), f"figures/f{i}.png")
    assert len(plt.get_fignums()) == before


def test_run_summary_reads_the_manifest_when_written(run: RunFolder) -> None:
    report = Report("x", run)
    report.run_summary()
    run.record_data("mnist", {"fingerprint": "f" * 64, "n": 70000})
    with run.stage("train"):
        pass
    md = report.write()[0].read_text("utf-8")
    assert "notsure demo" in md and "Seed: 3." in md
    assert "f" * 64 in md and "70,000" in md and "train" in md


def test_max_rows_and_bad_arguments(run: RunFolder) -> None:
    report = Report("x", run)
    rows = [{"i": i} for i in range(30)]
    report.table(rows, max_rows=5, csv="tables/all.csv")
    md = report.render_markdown()
    assert "Showing the first 5 of 30 rows" in md and "| 29 |" not in md
    assert len((run.path / "tables/all.csv").read_text().splitlines()) == 31
    with pytest.raises(ConfigError, match="2 images but 1 captions"):
        report.gallery(IMAGES, ["one"], name_prefix="g")
    with pytest.raises(ConfigError, match="uint8"):
        report.gallery([np.zeros((2, 2))], ["float"], name_prefix="g")
    with pytest.raises(ConfigError, match=".png"):
        report.figure(bar_figure(["a"], [1]), "figures/f.svg")


def test_contents_link_to_unique_section_anchors(run: RunFolder) -> None:
    report = Report("x", run)
    for title in ("Data", "Results: FPR <= 1%", "Data"):
        report.section(title)
    page = report.render_html()
    anchors = re.findall(r'<h2 id="([^"]+)"', page)
    assert len(set(anchors)) == 3
    assert re.findall(r'<a href="#([^"]+)"', page) == anchors
