"""Reading benchmarks: files and presets -> validated :class:`~perturbations.Item` lists.

>>> from robustify.data import load_items
>>> items = load_items("questions.csv", mapping="input=question,target=answer")  # doctest: +SKIP

``load_items("sample")`` returns the built-in benchmark. See ``docs/data.md`` for the
formats, presets, field mapping and error messages.

- :mod:`.formats`: :class:`FormatInfo`, the ``--format`` registry and format detection;
- :mod:`.presets`: the built-in formats and benchmark presets (mmlu, gsm8k, boolq ...);
- :mod:`.readers`: rows from JSONL, JSON, CSV/TSV, Parquet, Hugging Face folders;
- :mod:`.loaders`: column mapping, rows -> validated items, :func:`load_items`;
- :mod:`.selection`: ``items=KEY`` lists, ``[text, label]`` rows, ``hf:org/name`` (the Hub);
- :mod:`.variants_file`: frozen variants files (``run --variants``);
- :mod:`.export`: flat rows for other harnesses (``perturb --export``).
"""

from __future__ import annotations

from robustify.data.formats import FORMATS, FormatInfo, detect_format, format_names, register_format
from robustify.data.loaders import ITEM_FIELDS, MAX_LINE_BYTES, SAMPLE, load_items, parse_mapping

__all__ = ["load_items", "parse_mapping", "detect_format", "FORMATS", "FormatInfo",
           "register_format", "format_names", "ITEM_FIELDS", "MAX_LINE_BYTES", "SAMPLE"]
