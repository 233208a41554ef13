"""The one document model of every report, and its two renderers (HTML page, Markdown twin).

A :class:`Document` is a list of blocks: :class:`Heading`, :class:`Paragraph` (with a
style), :class:`Table` (with right-aligned numeric columns), :class:`Figure` (a chart as
PNG/SVG bytes), :class:`Example` (labelled fields, one of which may be a word
:class:`Diff`), :class:`Box` (paragraphs in one framed box: the headline) and
:class:`Details` (blocks folded under a summary line; HTML only, no script needed). The run report, the leakage report and the comparison report are all
built from these blocks, and written by :meth:`Document.write`::

    <stem>.html        self-contained: charts as base64 PNG, strict CSP, no script at all
    <stem>.md          the same content; charts as files beside it
    charts/<name>.<f>  one file per figure and format

Safety: blocks hold plain text, never markup. Every piece of text goes through
:func:`~robustify.reporting.format.escape_html` or
:func:`~robustify.reporting.format.escape_md` when it is rendered, and the page forbids
scripts with a Content-Security-Policy, so a model answering ``<script>...`` or
``[x](javascript:...)`` cannot run anything in a reader's browser.
"""

from __future__ import annotations

import base64
import difflib
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any, Callable, Iterable, Mapping, Sequence, Union

from perturbations.version import __version__

from robustify.atomic import write_bytes_atomic, write_text_atomic
from robustify.reporting.format import MISSING, escape_html, escape_md, is_missing

__all__ = ["CSP", "STYLES", "Heading", "Paragraph", "Table", "Figure", "Diff", "Example",
           "Box", "Details", "Block", "Column", "Document", "frame_table", "word_diff", "render_html", "render_markdown",
           "render_fragment"]

CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; "
       "form-action 'none'")
"""Content-Security-Policy of every report page: no script, no network, inline images only."""

STYLES = ("", "headline", "note", "muted", "warning")
"""Paragraph styles (classes of the page's stylesheet); ``headline`` is a quote in Markdown,
``warning`` starts with a bold "Warning:" there."""

_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_TOKEN = re.compile(r"\s+|[\w'’]+|[^\w\s]", re.UNICODE)
_DIFF_TAGS = {"=": "{}", "-": "<del>{}</del>", "+": "<ins>{}</ins>"}


@dataclass(frozen=True)
class Heading:
    """A section heading; ``anchor`` becomes the HTML ``id`` (empty: none)."""

    text: str
    level: int = 2
    anchor: str = ""


@dataclass(frozen=True)
class Paragraph:
    """A paragraph of plain text in one of :data:`STYLES`."""

    text: str
    style: str = ""

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"paragraph style {self.style!r}: use one of {STYLES}")


@dataclass(frozen=True)
class Table:
    """A table of text cells; columns whose index is in ``numeric`` are right-aligned."""

    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: frozenset[int] = frozenset()

    @classmethod
    def of(cls, headers: Sequence[Any], rows: Iterable[Sequence[Any]],
           numeric: Iterable[int] = ()) -> "Table":
        """A table from any cells: text as it is, a missing value as an en dash, else ``str``."""
        return cls(tuple(_cell(h) for h in headers),
                   tuple(tuple(_cell(c) for c in row) for row in rows), frozenset(numeric))


def _cell(value: Any) -> str:
    if isinstance(value, str):
        return value
    return MISSING if is_missing(value) else str(value)


@dataclass(frozen=True)
class Figure:
    """A chart: image bytes by format (``png`` is what the page embeds).

    ``name`` is the file name (``charts/<name>.<format>``): letters, digits, ``.``, ``_``
    and ``-`` only.
    """

    name: str
    images: Mapping[str, bytes]
    alt: str
    caption: str

    def __post_init__(self) -> None:
        if not _FILE_NAME.match(self.name):
            raise ValueError(f"figure name {self.name!r} is not a safe file name")


@dataclass(frozen=True)
class Diff:
    """A word diff: ``(op, text)`` segments, op ``=`` (kept), ``-`` (removed) or ``+`` (added)."""

    segments: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, original: Any, changed: Any) -> "Diff":
        """The word-level diff of two texts; whitespace is kept as it was."""
        a = _TOKEN.findall("" if is_missing(original) else str(original))
        b = _TOKEN.findall("" if is_missing(changed) else str(changed))
        segments: list[tuple[str, str]] = []
        matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
        for op, i1, i2, j1, j2 in matcher.get_opcodes():
            if op == "equal":
                segments.append(("=", "".join(a[i1:i2])))
                continue
            if op in ("delete", "replace"):
                segments.append(("-", "".join(a[i1:i2])))
            if op in ("insert", "replace"):
                segments.append(("+", "".join(b[j1:j2])))
        return cls(tuple(segments))


@dataclass(frozen=True)
class Example:
    """A boxed example: a title and labelled fields (text, or a :class:`Diff`)."""

    title: str
    fields: tuple[tuple[str, Union[str, Diff]], ...]


@dataclass(frozen=True)
class Box:
    """Paragraphs framed together (the headline box: warnings first, then each model)."""

    paragraphs: tuple[Paragraph, ...]
    style: str = "headline"


@dataclass(frozen=True)
class Details:
    """Blocks folded under a one-line summary (HTML ``<details>``; no script needed).

    The Markdown twin leaves them out (they exist to browse many rows in the page);
    put a paragraph beside them saying where the rows are.
    """

    summary: str
    blocks: tuple[Any, ...]


Block = Union[Heading, Paragraph, Table, Figure, Example, Box, Details]
"""Anything a :class:`Document` holds."""


Column = Union[tuple[str, str], tuple[str, Union[str, tuple[str, ...]], Callable[..., Any]]]
"""A :func:`frame_table` column: ``(header, key)`` or ``(header, key or keys, format)``."""


def frame_table(frame: Any, columns: Sequence[Column], *, text: Iterable[str] = ()) -> Table:
    """A table from a DataFrame: one row per record, one column per entry of ``columns``.

    Args:
        frame: A pandas DataFrame.
        columns: ``(header, key)`` shows the value as it is; ``(header, key, format)``
            shows ``format(value)``; ``(header, (key, ...), format)`` shows
            ``format(value, ...)`` (an interval from two columns). A key the frame
            lacks gives None.
        text: Headers of the text columns; every other column is numeric (right-aligned).
    """
    text = set(text)
    cells: list[tuple[str, tuple[str, ...], Callable[..., Any]]] = []
    for header, key, *fmt in columns:
        keys = (key,) if isinstance(key, str) else tuple(key)
        cells.append((header, keys, fmt[0] if fmt else (lambda value: value)))
    return Table.of([header for header, _, _ in cells],
                    ([fmt(*(record.get(k) for k in keys)) for _, keys, fmt in cells]
                     for record in frame.to_dict("records")),
                    {i for i, (header, _, _) in enumerate(cells) if header not in text})


@dataclass
class Document:
    """A report under construction: a title (the first heading) and its blocks."""

    title: str
    blocks: list[Block] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.blocks:
            self.blocks.append(Heading(self.title, 1))

    def heading(self, text: str, level: int = 2, anchor: str = "") -> None:
        """Add a heading (``anchor``: its HTML id)."""
        self.blocks.append(Heading(text, level, anchor))

    def para(self, text: str, style: str = "") -> None:
        """Add a paragraph; ``style`` is one of :data:`STYLES`."""
        self.blocks.append(Paragraph(text, style))

    def table(self, headers: Sequence[Any], rows: Iterable[Sequence[Any]],
              numeric: Iterable[int] = ()) -> None:
        """Add a table; ``numeric`` column indices are right-aligned."""
        self.blocks.append(Table.of(headers, rows, numeric))

    def figure(self, name: str, images: Mapping[str, bytes], alt: str, caption: str) -> None:
        """Add a chart (image bytes by format, ``png`` at least for the page)."""
        self.blocks.append(Figure(name, dict(images), alt, caption))

    def add(self, blocks: Iterable[Block]) -> None:
        """Add blocks built elsewhere."""
        self.blocks.extend(blocks)

    def html(self) -> str:
        """The self-contained page (:func:`render_html`)."""
        return render_html(self)

    def markdown(self, chart_format: str | None = "png", chart_dir: str = "charts") -> str:
        """The Markdown twin (:func:`render_markdown`)."""
        return render_markdown(self, chart_format=chart_format, chart_dir=chart_dir)

    def write(self, out_dir: str | os.PathLike[str], stem: str, *,
              formats: Sequence[str] = ("png",)) -> dict[str, Path]:
        """Write ``<stem>.html``, ``<stem>.md`` and ``charts/<name>.<format>``, each atomically.

        Args:
            out_dir: The folder (created if needed).
            stem: File name of the page and its twin, without extension.
            formats: Chart files to write (of the formats each figure has); the Markdown
                links the PNG when written, else the first format; none: no chart in it.

        Returns:
            Paths by key: ``html``, ``md`` and ``chart_<name>_<format>``.
        """
        out = Path(out_dir)
        files: dict[str, Path] = {}
        for block in self.blocks:
            if isinstance(block, Figure):
                for fmt in formats:
                    if fmt in block.images:
                        files[f"chart_{block.name}_{fmt}"] = write_bytes_atomic(
                            out / "charts" / f"{block.name}.{fmt}", block.images[fmt])
        md_format = "png" if "png" in formats else (formats[0] if formats else None)
        files["html"] = write_text_atomic(out / f"{stem}.html", self.html())
        files["md"] = write_text_atomic(out / f"{stem}.md", self.markdown(md_format))
        return files


# ------------------------------------------------------------------------ renderers


def _diff_html(diff: Diff) -> str:
    return "".join(_DIFF_TAGS[op].format(escape_html(text)) for op, text in diff.segments)


def word_diff(original: Any, changed: Any) -> str:
    """Word-level diff as escaped HTML: removed words in ``<del>``, added in ``<ins>``.

    Every fragment is HTML-escaped; the only tags are del/ins.
    """
    return _diff_html(Diff.of(original, changed))


def _block_html(block: Block) -> str:
    if isinstance(block, Heading):
        anchor = f' id="{escape_html(block.anchor)}"' if block.anchor else ""
        return f"<h{block.level}{anchor}>{escape_html(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        cls = f' class="{escape_html(block.style)}"' if block.style else ""
        lead = "<strong>Warning:</strong> " if block.style == "warning" else ""
        return f"<p{cls}>{lead}{escape_html(block.text)}</p>"
    if isinstance(block, Table):
        head = "".join(f"<th>{escape_html(h)}</th>" for h in block.headers)
        body = "".join(
            "<tr>" + "".join(f'<td class="num">{escape_html(c)}</td>' if i in block.numeric
                             else f"<td>{escape_html(c)}</td>" for i, c in enumerate(row))
            + "</tr>" for row in block.rows)
        return (f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead>'
                f"<tbody>{body}</tbody></table></div>")
    if isinstance(block, Figure):
        png = block.images.get("png")
        if png is None:
            return ""
        src = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        return (f'<figure><img src="{src}" alt="{escape_html(block.alt)}">'
                f"<figcaption>{escape_html(block.caption)}</figcaption></figure>")
    if isinstance(block, Box):
        inner = "".join(_block_html(p) for p in block.paragraphs)
        return f'<div class="{escape_html(block.style)}">{inner}</div>'
    if isinstance(block, Details):
        inner = "".join(_block_html(b) for b in block.blocks)
        return (f"<details><summary>{escape_html(block.summary)}</summary>{inner}"
                "</details>")
    if isinstance(block, Example):
        items = "".join(
            f"<dt>{escape_html(label)}</dt><dd>"
            f"{_diff_html(value) if isinstance(value, Diff) else escape_html(value)}</dd>"
            for label, value in block.fields)
        return f'<div class="example"><h4>{escape_html(block.title)}</h4><dl>{items}</dl></div>'
    raise TypeError(f"not a document block: {type(block).__name__}")


_FRAGMENT_STYLE = ("border-left: 4px solid #0072B2; background: #f3f7fb; padding: 0.4rem 0.8rem; "
                   "font-family: system-ui, sans-serif")


def render_fragment(blocks: Iterable[Block]) -> str:
    """Blocks as an HTML fragment with inline style (a notebook cell: no page, no stylesheet).

    Every text is escaped as in :func:`render_html`; warnings are marked in bold.
    """
    body = "".join(_block_html(b) for b in blocks)
    return f'<div style="{_FRAGMENT_STYLE}">{body}</div>'


def render_html(doc: Document) -> str:
    """The page: the blocks in the report template, under :data:`CSP`."""
    body = "\n".join(html for html in map(_block_html, doc.blocks) if html)
    page = Template(resources.files("robustify").joinpath("templates/report.html")
                    .read_text(encoding="utf-8"))
    return page.substitute(csp=escape_html(CSP), version=escape_html(__version__),
                           title=escape_html(doc.title), body=body)


def _inline_md(value: Any) -> str:
    return escape_md(value, line_start=False)


def _block_md(block: Block, chart_format: str | None, chart_dir: str) -> str:
    if isinstance(block, Heading):
        return f"{'#' * block.level} {escape_md(block.text)}"
    if isinstance(block, Paragraph):
        text = escape_md(block.text)
        if block.style == "warning":
            text = f"**Warning:** {escape_md(block.text, line_start=False)}"
        return f"> {text}" if block.style == "headline" else text
    if isinstance(block, Box):
        return "\n>\n".join("> " + _block_md(p, chart_format, chart_dir).removeprefix("> ")
                             for p in block.paragraphs)
    if isinstance(block, Details):
        return ""
    if isinstance(block, Table):
        lines = ["| " + " | ".join(_inline_md(h) for h in block.headers) + " |",
                 "|" + "|".join("---:" if i in block.numeric else "---"
                                for i in range(len(block.headers))) + "|"]
        lines += ["| " + " | ".join(_inline_md(c) for c in row) + " |" for row in block.rows]
        return "\n".join(lines)
    if isinstance(block, Figure):
        if chart_format is None or chart_format not in block.images:
            return ""
        return (f"![{_inline_md(block.alt)}]({chart_dir}/{block.name}.{chart_format})\n\n"
                f"*{_inline_md(block.caption)}*")
    if isinstance(block, Example):
        lines = [f"**{_inline_md(block.title)}**", ""]
        for label, value in block.fields:
            shown = ("".join(_DIFF_TAGS[op].format(_inline_md(text))
                             for op, text in value.segments)
                     if isinstance(value, Diff) else _inline_md(value))
            lines.append(f"- **{_inline_md(label)}:** {shown}")
        return "\n".join(lines)
    raise TypeError(f"not a document block: {type(block).__name__}")


def render_markdown(doc: Document, *, chart_format: str | None = "png",
                    chart_dir: str = "charts") -> str:
    """The Markdown twin: figures link ``chart_dir/<name>.<chart_format>`` (None: left out)."""
    parts = (_block_md(block, chart_format, chart_dir) for block in doc.blocks)
    return "\n\n".join(part for part in parts if part) + "\n"
