"""The report a job writes into its run folder: ``report.md`` and a self-contained ``report.html``.

A job adds sections, paragraphs, tables, figures and image galleries in order; :meth:`Report.write`
renders both files at once and writes them atomically. Figures and images are saved as PNG files
in the run folder (linked from the Markdown) and embedded as base64 ``data:`` URIs in the HTML, so
the HTML opens offline with nothing beside it. The engine renders what it is given and computes
nothing; use :mod:`notsure.reports.fmt` to put numbers into sentences.

Text is literal except two inline marks, ``**bold**`` and ```code```, rendered in both outputs.
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from notsure.constants import VERSION
from notsure.errors import ConfigError
from notsure.io import RunFolder
from notsure.io.run_folder import REPORT_HTML, REPORT_MD
from notsure.reports import fmt
from notsure.reports.figures import plt
from notsure.reports.tables import (
    Formats,
    Row,
    markdown_cell,
    render_table_html,
    render_table_markdown,
    table_columns,
)

_CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d1d1f;
       background: #fff; margin: 0; }
main { max-width: 1100px; margin: 0 auto; padding: 1.5rem 2rem 3rem; }
h1 { font-size: 1.8rem; margin-bottom: .2rem; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: .2rem; margin-top: 2.2rem; }
h3 { margin-top: 1.6rem; }
.meta { color: #666; font-size: .9rem; margin-top: 0; }
nav ol { columns: 2; font-size: .95rem; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
            font-size: .88em; background: #f4f4f6; border-radius: 3px; }
code { padding: .05em .3em; }
pre { padding: .7rem 1rem; overflow-x: auto; }
pre code { padding: 0; background: none; }
.table-wrap { overflow-x: auto; margin: 1rem 0; }
table { border-collapse: collapse; font-size: .9rem; }
caption { caption-side: top; text-align: left; font-weight: 600; padding-bottom: .3rem; }
th, td { border-bottom: 1px solid #e3e3e3; padding: .25rem .7rem; text-align: left; }
th { background: #f6f6f8; border-bottom: 2px solid #ccc; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:hover { background: #fafafc; }
figure { margin: 1.2rem 0; overflow-x: auto; }
figure img { display: block; }
figcaption, .note { color: #555; font-size: .9rem; }
.gallery { display: flex; flex-wrap: wrap; gap: .8rem; }
.gallery figure { margin: 0; text-align: center; }
.gallery img { image-rendering: pixelated; border: 1px solid #ccc; }
.gallery figcaption { font-size: .78rem; max-width: 12rem; }
footer { margin-top: 3rem; color: #888; font-size: .8rem; }
"""

_CODE_SPAN = re.compile(r"(`[^`\n]+`)")
_BOLD = re.compile(r"\*\*(.+?)\*\*")


def inline_html(text: str) -> str:
    """Escape ``text`` for HTML, rendering ``**bold**`` and ```code``` marks."""
    parts = []
    for piece in _CODE_SPAN.split(str(text)):
        if len(piece) > 2 and piece.startswith("`") and piece.endswith("`"):
            parts.append(f"<code>{html.escape(piece[1:-1])}</code>")
        else:
            parts.append(_BOLD.sub(r"<strong>\1</strong>", html.escape(piece)))
    return "".join(parts)


def slug(title: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    kept = re.sub(r"[^\w\- ]", "", title.strip().lower())
    return kept.replace(" ", "-")


def png_bytes(image: np.ndarray, scale: int = 1) -> bytes:
    """Encode a uint8 grayscale ``(H, W)`` or RGB ``(H, W, 3)`` image as PNG, upscaled by
    ``scale`` with nearest-neighbour so pixels stay sharp."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3
                                                          and image.shape[2] == 3)):
        raise ConfigError(
            f"image has dtype {image.dtype} and shape {image.shape}; expected uint8 (H, W) or "
            "(H, W, 3)"
        )
    if not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ConfigError(f"scale must be an integer >= 1, got {scale!r}")
    if scale > 1:
        image = image.repeat(scale, axis=0).repeat(scale, axis=1)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _md_alt(text: str) -> str:
    """Alt text safe inside ``![...]`` and inside a table cell."""
    return re.sub(r"([\[\]\\|])", r"\\\1", text.replace("\n", " "))


@dataclass(frozen=True)
class _Block:
    """One piece of the report, already rendered for both outputs."""

    markdown: str
    html: str


def _bullets_block(items: Sequence[str]) -> _Block:
    md = "\n".join(f"- {item}" for item in items)
    return _Block(md, "<ul>" + "".join(f"<li>{inline_html(i)}</li>" for i in items) + "</ul>")


def _code_block(text: str) -> _Block:
    text = text.rstrip()
    fence = "`" * max(3, 1 + max((len(r) for r in re.findall(r"`+", text)), default=0))
    return _Block(f"{fence}\n{text}\n{fence}", f"<pre><code>{html.escape(text)}</code></pre>")


def _table_block(
    rows: Sequence[Row],
    columns: Sequence[str],
    label: str,
    note: str = "",
    *,
    float_format: fmt.FloatFormat = fmt.num,
    formats: Formats | None = None,
) -> _Block:
    md = render_table_markdown(rows, columns, float_format=float_format, formats=formats)
    body = render_table_html(rows, columns, caption=label, float_format=float_format,
                             formats=formats)
    md_parts = [f"**{label}**", md.rstrip()] + ([note] if note else [])
    html_note = f'<p class="note">{inline_html(note)}</p>' if note else ""
    return _Block("\n\n".join(md_parts), f'<div class="table-wrap">{body}</div>{html_note}')


def _image_block(name: str, png: bytes, alt: str, label: str) -> _Block:
    return _Block(
        f"![{_md_alt(alt)}]({name})\n\n*{label}*",
        f'<figure><img src="{_data_uri(png)}" alt="{html.escape(alt)}">'
        f"<figcaption>{inline_html(label)}</figcaption></figure>",
    )


def _gallery_block(names: Sequence[str], pngs: Sequence[bytes], captions: Sequence[str],
                   ncols: int) -> _Block:
    tiles = [f"![{_md_alt(c)}]({n})<br>{markdown_cell(c)}"
             for n, c in zip(names, captions, strict=True)]
    width = min(ncols, len(tiles))
    lines = ["|" + "   |" * width, "|" + " --- |" * width]
    for i in range(0, len(tiles), ncols):
        row = tiles[i:i + ncols]
        lines.append("| " + " | ".join(row + [" "] * (width - len(row))) + " |")
    figures = "".join(
        f'<figure><img src="{_data_uri(p)}" alt="{html.escape(c)}">'
        f"<figcaption>{inline_html(c)}</figcaption></figure>"
        for p, c in zip(pngs, captions, strict=True)
    )
    return _Block("\n".join(lines) if tiles else "", f'<div class="gallery">{figures}</div>')


#: Placeholder for the run summary, rendered from the manifest when the report is written.
_RUN_SUMMARY = object()


class Report:
    """A report in a run folder, built block by block and written by :meth:`write`."""

    def __init__(self, title: str, run: RunFolder, *, subtitle: str | None = None) -> None:
        self.title = title
        self.run = run
        self.subtitle = subtitle
        self._blocks: list[_Block | object] = []
        self._sections: list[tuple[str, str]] = []  # (title, anchor) for the contents
        self._n_figures = 0
        self._n_tables = 0

    # -- text -----------------------------------------------------------------------------
    def section(self, title: str) -> None:
        """A top-level section (``h2``), listed in the contents."""
        taken = {a for _, a in self._sections}
        anchor, n = slug(title), 0
        while anchor in taken:
            n += 1
            anchor = f"{slug(title)}-{n}"
        self._sections.append((title, anchor))
        self._blocks.append(_Block(f"## {title}", f'<h2 id="{anchor}">{html.escape(title)}</h2>'))

    def subsection(self, title: str) -> None:
        """A sub-section (``h3``)."""
        self._blocks.append(_Block(f"### {title}", f"<h3>{html.escape(title)}</h3>"))

    def paragraph(self, text: str) -> None:
        """A paragraph of literal text (with ``**bold**`` and ```code``` marks)."""
        self._blocks.append(_Block(str(text), f"<p>{inline_html(text)}</p>"))

    def bullets(self, items: Sequence[str]) -> None:
        """A bulleted list; each item is text like a paragraph."""
        self._blocks.append(_bullets_block(items))

    def code(self, text: str) -> None:
        """A preformatted block (a command line, a config), shown verbatim."""
        self._blocks.append(_code_block(text))

    # -- tables ---------------------------------------------------------------------------
    def table(
        self,
        rows: Sequence[Row],
        columns: Sequence[str] | None = None,
        *,
        caption: str | None = None,
        csv: str | None = None,
        float_format: fmt.FloatFormat = fmt.num,
        formats: Formats | None = None,
        max_rows: int | None = None,
    ) -> None:
        """A numbered table of ``rows`` (dicts) in both outputs, cells formatted alike.

        ``csv="tables/x.csv"`` also writes all rows at full precision to the run folder.
        ``max_rows`` shows only the first rows and says how many there are (the CSV has all).
        ``formats`` maps a column to its formatter (e.g. ``{"fpr": fmt.pct}``); other floats use
        ``float_format`` (a format spec such as ``".3f"`` or a function).
        """
        columns = table_columns(rows, columns)
        if csv is not None:
            self.run.write_csv(csv, rows, columns)
        self._n_tables += 1
        label = f"Table {self._n_tables}" + (f". {caption}" if caption else "")
        shown = rows if max_rows is None else rows[:max_rows]
        if len(shown) < len(rows):
            note = f"Showing the first {fmt.count(len(shown))} of {fmt.count(len(rows))} rows"
            note += f"; all rows in `{csv}`." if csv else "."
        else:
            note = f"Also in `{csv}`." if csv else ""
        self._blocks.append(_table_block(shown, columns, label, note,
                                         float_format=float_format, formats=formats))

    # -- figures and images ---------------------------------------------------------------
    def _figure_label(self, caption: str | None) -> str:
        self._n_figures += 1
        return f"Figure {self._n_figures}" + (f". {caption}" if caption else "")

    def figure(self, fig: Figure, name: str, caption: str | None = None, *,
               dpi: int = 110) -> Path:
        """Save ``fig`` as ``name`` (a ``.png`` path in the run folder) and show it.

        The figure is closed whatever happens, so figures never pile up. Returns the PNG's path.
        """
        try:
            if not name.endswith(".png"):
                raise ConfigError(f"figure name {name!r} must end in .png")
            with self.run.atomic(name) as tmp:
                fig.savefig(tmp, format="png", dpi=dpi)
        finally:
            plt.close(fig)
        path = self.run.file(name)
        label = self._figure_label(caption)
        self._blocks.append(_image_block(name, path.read_bytes(), caption or name, label))
        return path

    def gallery(
        self,
        images: Sequence[np.ndarray],
        captions: Sequence[str],
        *,
        name_prefix: str,
        scale: int = 3,
        ncols: int = 6,
        caption: str | None = None,
    ) -> list[Path]:
        """A grid of small uint8 images, each upscaled ``scale`` times (nearest) and saved as
        ``{name_prefix}_{i:03d}.png`` in the run folder, its caption below it."""
        if len(images) != len(captions):
            raise ConfigError(
                f"gallery got {len(images)} images but {len(captions)} captions; give one each"
            )
        if ncols < 1:
            raise ConfigError(f"ncols must be >= 1, got {ncols}")
        names = [f"{name_prefix}_{i:03d}.png" for i in range(len(images))]
        pngs = [png_bytes(image, scale) for image in images]
        paths = []
        for name, data in zip(names, pngs, strict=True):
            with self.run.atomic(name) as tmp:
                tmp.write_bytes(data)
            paths.append(self.run.file(name))
        self._blocks.append(_gallery_block(names, pngs, [str(c) for c in captions], ncols))
        if caption:
            label = self._figure_label(caption)
            self._blocks.append(_Block(f"*{label}*", f"<p class=\"note\">{inline_html(label)}</p>"))
        return paths

    # -- run facts ------------------------------------------------------------------------
    def run_summary(self, title: str = "Run") -> None:
        """A section with the run's provenance from its manifest (command, seed, data
        fingerprints, versions, stage timings), read when the report is written."""
        self.section(title)
        self._blocks.append(_RUN_SUMMARY)

    def _run_summary_blocks(self) -> list[_Block]:
        m = self.run.manifest
        blocks = [
            _bullets_block([
                f"Job `{m['job']}`, started {m['started']}, run folder `{self.run.path}`.",
                f"Seed: {fmt.MISSING if m['seed'] is None else m['seed']}.",
                "Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + ".",
            ]),
            _code_block(" ".join(m["command"])),
        ]
        if m["data"]:
            rows = [{"data": name, **info} for name, info in m["data"].items()]
            blocks.append(_table_block(rows, table_columns(rows), "Data used"))
        if m["timings_s"]:
            rows = [{"stage": k, "wall time": fmt.duration(v)} for k, v in m["timings_s"].items()]
            blocks.append(_table_block(rows, ["stage", "wall time"], "Stage timings"))
        return blocks

    # -- output ---------------------------------------------------------------------------
    def _rendered_blocks(self) -> list[_Block]:
        out: list[_Block] = []
        for block in self._blocks:
            if block is _RUN_SUMMARY:
                out.extend(self._run_summary_blocks())
            else:
                out.append(block)  # type: ignore[arg-type]
        return out

    def render_markdown(self) -> str:
        """The whole report as Markdown (figures linked as files in the run folder)."""
        head = [f"# {self.title}"]
        if self.subtitle:
            head.append(self.subtitle)
        if len(self._sections) >= 3:
            head.append("\n".join(f"{i}. [{t}](#{a})"
                                  for i, (t, a) in enumerate(self._sections, 1)))
        body = [b.markdown for b in self._rendered_blocks() if b.markdown]
        return "\n\n".join(head + body) + "\n"

    def render_html(self) -> str:
        """The whole report as one HTML page with inline CSS and embedded images."""
        title = html.escape(self.title)
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{title}</title><style>{_CSS}</style></head>",
            f"<body><main><h1>{title}</h1>",
        ]
        if self.subtitle:
            parts.append(f'<p class="meta">{inline_html(self.subtitle)}</p>')
        if len(self._sections) >= 3:
            items = "".join(f'<li><a href="#{a}">{html.escape(t)}</a></li>'
                            for t, a in self._sections)
            parts.append(f"<nav><ol>{items}</ol></nav>")
        parts += [b.html for b in self._rendered_blocks()]
        parts.append(f"<footer>Written by notsure {html.escape(VERSION)} into "
                     f"{html.escape(self.run.path.name)}.</footer></main></body></html>")
        return "\n".join(parts) + "\n"

    def write(self) -> tuple[Path, Path]:
        """Render both outputs, then write ``report.md`` and ``report.html`` atomically.

        Both are rendered before either file is written, so a rendering failure leaves neither.
        """
        markdown, page = self.render_markdown(), self.render_html()
        return self.run.write_text(REPORT_MD, markdown), self.run.write_text(REPORT_HTML, page)
