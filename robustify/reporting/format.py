"""The one place numbers and text are formatted for reports, summaries and the terminal.

Every helper treats a missing value the same way (``None``, ``NaN`` of any float width,
``pd.NA``, ``NaT``) and prints it as an en dash, so a table never shows ``nan`` and no
helper raises on a missing cell. Text that comes from data or from a model enters a
document only through :func:`escape_html` or :func:`escape_md`.
"""

from __future__ import annotations

import html
import re
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["MISSING", "is_missing", "pct", "pp", "ci", "pvalue", "num", "short", "truncate",
           "escape_html", "escape_md"]

MISSING = "–"
"""What a missing number prints as."""


def is_missing(value: Any) -> bool:
    """True for None, NaN (any float type), pd.NA and NaT; False for everything else.

    >>> [is_missing(v) for v in (None, float("nan"), np.float32("nan"), pd.NA, 0.0, "x")]
    [True, True, True, True, False, False]
    """
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists, arrays: not a scalar missing value
        return False


def _text(value: Any) -> str:
    return "" if is_missing(value) else str(value)


def pct(x: Any, digits: int = 1) -> str:
    """A share as a percentage: ``0.123 -> '12.3%'``."""
    return MISSING if is_missing(x) else f"{float(x) * 100:.{digits}f}%"


def pp(x: Any, digits: int = 1, sign: bool = True) -> str:
    """Percentage points, signed by default; never ``-0.0``: ``-0.04 -> '+0.0'``."""
    if is_missing(x):
        return MISSING
    value = round(float(x), digits) + 0.0  # + 0.0 turns -0.0 into 0.0
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def ci(low: Any, high: Any, digits: int = 1) -> str:
    """An interval in percentage points: ``[-1.2, +3.4]``."""
    if is_missing(low) or is_missing(high):
        return MISSING
    return f"[{pp(low, digits)}, {pp(high, digits)}]"


def pvalue(x: Any) -> str:
    """A p-value with three decimals, ``<0.001`` below that."""
    if is_missing(x):
        return MISSING
    return "<0.001" if float(x) < 0.001 else f"{float(x):.3f}"


def num(x: Any) -> str:
    """A count as an integer, anything else with three significant digits."""
    if is_missing(x):
        return MISSING
    if isinstance(x, (int, np.integer)) or float(x).is_integer():
        return str(int(x))
    return f"{float(x):.3g}"


def short(text: Any, limit: int = 160) -> str:
    """Whitespace collapsed, cut at ``limit`` characters with an ellipsis."""
    text = " ".join(_text(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def truncate(text: Any, limit: int = 600) -> str:
    """Cut at ``limit`` characters (whitespace kept), marked with `` …``."""
    text = _text(text)
    return text if len(text) <= limit else text[:limit].rstrip() + " …"


def escape_html(value: Any) -> str:
    """HTML-escape anything (quotes included); the only way data enters an HTML document.

    A missing value (None, NaN, ``pd.NA``) is empty text, never ``nan`` or ``<NA>``.
    """
    return html.escape(_text(value), quote=True)


_SCHEME = re.compile(r"(?i)\b(https?|ftps?|javascript|vbscript|data|file|mailto):")
_WWW = re.compile(r"(?i)\b(www)\.")


def escape_md(value: Any, *, line_start: bool = True) -> str:
    """Escape text for Markdown: HTML first, then the inline Markdown metacharacters.

    Quotes stay as they are (no tag can start without ``<``, which is escaped), so the
    Markdown reads "the model's answer", not "the model&#x27;s answer". Line breaks become
    ``<br>``, so data never starts a line of its own. The ``:`` of a URL scheme
    (``http:``, ``javascript:`` ...) and the dot of ``www.`` are escaped, so no renderer
    makes a live link of data (brackets are escaped, so no ``[text](url)`` or image
    either). A missing value is empty text.

    Args:
        value: Anything; converted with ``str``.
        line_start: The text opens a Markdown line (a paragraph, a quote): a leading
            ``#``, ``>``, ``+`` or ``-`` is escaped so data never becomes a heading, quote
            or list. False inside a line (a table cell, after a label), where they are
            plain characters and stay readable (``-3.2``).
    """
    raw = html.escape(_text(value), quote=False)
    text = re.sub(r"([\\`*_\[\]|~])", r"\\\1", raw)
    # no autolink either: GFM links bare "http://..." and "www...." without brackets
    text = _SCHEME.sub(r"\1\\:", text)
    text = _WWW.sub(r"\1\\.", text)
    if line_start:
        text = re.sub(r"^(\s*)([#>+-])", r"\1\\\2", text)
        text = re.sub(r"^(\s*\d+)([.)])", r"\1\\\2", text)  # "1." would open a list
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "<br>")
