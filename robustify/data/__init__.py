"""Reading benchmarks: files and presets -> validated :class:`~perturbations.Item` lists.

>>> from robustify.data import load_items
>>> items = load_items("questions.csv", mapping="input=question,target=answer")  # doctest: +SKIP

``load_items("sample")`` returns the built-in benchmark. See ``docs/data.md`` for the
formats, presets, field mapping and error messages.
"""

from __future__ import annotations

from robustify.data.formats import FORMATS, FormatInfo, detect_format
from robustify.data.loaders import ITEM_FIELDS, MAX_LINE_BYTES, SAMPLE, load_items, parse_mapping

__all__ = ["load_items", "parse_mapping", "detect_format", "FORMATS", "FormatInfo",
           "ITEM_FIELDS", "MAX_LINE_BYTES", "SAMPLE"]
