"""Where a run's rows live until they become the results frame: column by column, compactly.

Rows are stored as typed arrays and shared strings (an item is kept only until its rows
are scored, and a variant that differs from its clean original only in its text keeps
just that text), so a run of millions of rows holds little more than its results frame.
"""

from __future__ import annotations

import dataclasses
from array import array
from typing import TYPE_CHECKING, Any

from perturbations.records import Item, Variant

from robustify.records import RESULT_COLUMNS

if TYPE_CHECKING:  # plan.py imports this module; the type is only named here
    import pandas as pd

    from robustify.runner.plan import Plan

# numpy and pandas are imported when the frame is built, not before the first model call

__all__ = ["Rows", "Results", "build_frame", "empty_frame"]

_NAN = float("nan")
_UNKNOWN = object()


def _arrow_strings() -> Any:
    """pyarrow when pandas keeps ``str`` columns in Arrow (pandas 3 + pyarrow), else None.

    Only then can the runner pack string columns into Arrow while it runs and hand them
    to the frame as they are; elsewhere it keeps Python lists and lets pandas infer, so
    the frame's dtypes never depend on this optimisation.
    """
    try:
        import pyarrow
    except ImportError:
        return None
    import pandas as pd

    dtype = pd.Series(["x"]).dtype
    if isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow":
        return pyarrow
    return None


_STRING_COLUMNS = ("item_id", "variant_id", "spec", "transform", "severity_label",
                   "label_policy", "task", "input", "target")
_SEAL_ROWS = 16384
"""Rows per packed chunk of the string columns."""


class Rows:
    """The variant side of every row, stored column by column.

    One Python object per row would cost about 2 KB (a 25-key dict, its floats, the
    Variant and its Item, all held until the end); at a million rows that is gigabytes.
    Here numbers go to typed arrays, and every :data:`_SEAL_ROWS` rows the string
    columns are packed into Arrow arrays, which become the frame's columns without a
    copy (the per-row Python strings are freed as the run goes, instead of piling up
    and then being converted all at once at the end).

    The item a row is scored against is kept until every backend has scored the row.
    A variant whose item equals its clean original except for ``input`` keeps only a
    pointer to the original (its text is in the ``input`` column) and gets its item
    rebuilt on demand: most variants are exactly that.
    """

    def __init__(self) -> None:
        self._pa: Any = _UNKNOWN  # pyarrow or None, decided at the first seal or column
        self._open: dict[str, list[Any]] = {name: [] for name in _STRING_COLUMNS}
        self._sealed: dict[str, list[Any]] = {name: [] for name in _STRING_COLUMNS}
        self._loose: set[str] = set()  # columns with a non-string value: kept as Python lists
        self._sealed_rows = 0
        self._count = 0
        self.severity = array("d")
        self.replicate = array("q")
        self.changed = bytearray()
        self.edit_rate = array("d")
        self.metadata: list[Any] = []
        self.meta_keys: dict[str, None] = {}
        self.source: list[Item | None] = []
        self.own_input = bytearray()
        # Equal short strings (spec, transform, ...) from different variants are often
        # distinct objects; keeping one copy of each makes the open lists cheaper.
        self._shared: dict[Any, Any] = {}
        self._meta_seen: set[int] = set()

    def __len__(self) -> int:
        return self._count

    def add(self, variant: Variant, source: Item, own_input: bool) -> None:
        """Append one row; ``source`` is the item to score against (see class doc)."""
        item = variant.item
        shared = self._shared.setdefault
        columns = self._open
        columns["item_id"].append(item.id)
        columns["variant_id"].append(variant.variant_id)
        columns["spec"].append(shared(variant.spec, variant.spec))
        columns["transform"].append(shared(variant.transform, variant.transform))
        columns["severity_label"].append(variant.severity_label)
        columns["label_policy"].append(shared(variant.label_policy, variant.label_policy))
        columns["task"].append(shared(item.task, item.task))
        columns["input"].append(item.input)
        columns["target"].append(item.target)
        self.severity.append(variant.severity)
        self.replicate.append(variant.replicate)
        self.changed.append(1 if variant.changed else 0)
        self.edit_rate.append(variant.edit_rate)
        metadata = item.metadata
        self.metadata.append(metadata)
        if metadata and id(metadata) not in self._meta_seen:
            # Variants share their item's metadata mapping: look at each mapping once.
            self._meta_seen.add(id(metadata))
            for key in metadata:
                self.meta_keys.setdefault(key, None)
        self.source.append(source)
        self.own_input.append(1 if own_input else 0)
        self._count += 1
        if self._pa is not None and self._count - self._sealed_rows >= _SEAL_ROWS:
            self._seal()

    def _arrow(self) -> Any:
        if self._pa is _UNKNOWN:
            self._pa = _arrow_strings()
        return self._pa

    def _seal(self) -> None:
        """Pack the open rows of each string column into one Arrow array."""
        pa = self._arrow()
        if pa is None or self._count == self._sealed_rows:
            return
        for name, values in self._open.items():
            if name in self._loose:
                continue
            try:
                packed = pa.array(values, type=pa.large_string())
            except (pa.ArrowTypeError, pa.ArrowInvalid):
                # Not all strings (a hand-made Variant): keep this column in Python.
                self._loose.add(name)
                self._open[name] = self._unpacked(name) + values
                continue
            self._sealed[name].append(packed)
            self._open[name] = []
        self._sealed_rows = self._count

    def _unpacked(self, name: str) -> list[Any]:
        chunks, self._sealed[name] = self._sealed[name], []
        return [value for chunk in chunks for value in chunk.to_pylist()]

    def get(self, name: str, index: int) -> Any:
        """One value of a string column."""
        if name in self._loose or index >= self._sealed_rows:
            offset = 0 if name in self._loose else self._sealed_rows
            return self._open[name][index - offset]
        chunk, position = divmod(index, _SEAL_ROWS)
        return self._sealed[name][chunk][position].as_py()

    def item(self, index: int) -> Item:
        """The item of row ``index`` (rebuilt from its clean original when only the text differs)."""
        source = self.source[index]
        if source is None:  # pragma: no cover - released rows are never asked again
            raise RuntimeError(f"row {index} was already scored")
        if self.own_input[index]:
            return dataclasses.replace(source, input=self.get("input", index))
        return source

    def base_row(self, index: int, label: str) -> dict[str, Any]:
        """The variant-side fields of one row as a plain dict (for ``on_result``)."""
        get = self.get
        return {
            "model": label,
            "item_id": get("item_id", index),
            "variant_id": get("variant_id", index),
            "spec": get("spec", index),
            "transform": get("transform", index),
            "severity": self.severity[index],
            "severity_label": get("severity_label", index),
            "replicate": self.replicate[index],
            "changed": bool(self.changed[index]),
            "edit_rate": self.edit_rate[index],
            "label_policy": get("label_policy", index),
            "task": get("task", index),
            "input": get("input", index),
            "target": get("target", index),
        }

    def column(self, name: str) -> Any:
        """One variant-side column, ready for :class:`pandas.DataFrame` (made on demand)."""
        import numpy as np
        import pandas as pd

        n = self._count
        if name in self._open:
            if self._arrow() is None or name in self._loose:
                return self._open[name]
            self._seal()
            chunks = self._sealed[name]
            if not n or all(chunk.null_count == len(chunk) for chunk in chunks):
                # All missing (e.g. severity_label of clean rows): pandas makes that an
                # object column of None, so hand it the same thing.
                return [None] * n
            packed = self._pa.chunked_array(chunks, type=self._pa.large_string())
            return pd.array(packed, dtype="str")
        if name in ("severity", "edit_rate"):
            return np.frombuffer(getattr(self, name), dtype=np.float64) if n else []
        if name == "replicate":
            return np.frombuffer(self.replicate, dtype=np.int64) if n else []
        if name == "changed":
            return np.frombuffer(bytes(self.changed), dtype=np.bool_)
        key = name.removeprefix("meta.")
        return [m.get(key, _NAN) if m else _NAN for m in self.metadata]

    def drop_sources(self) -> None:
        """Forget the items kept for scoring (once every row is scored)."""
        self.source = []
        self.own_input = bytearray()

    def constant(self, text: str) -> Any:
        """A string column holding ``text`` on every row (the model label).

        Built straight from its buffers when Arrow is used: a generic conversion of a
        million-element list goes through growing builders and costs twice the memory.
        """
        import numpy as np
        import pandas as pd

        n = self._count
        if self._arrow() is None:
            return [text] * n
        data = text.encode("utf-8")
        offsets = np.arange(0, (n + 1) * len(data), len(data), dtype=np.int64)[:n + 1]
        packed = self._pa.LargeStringArray.from_buffers(
            n, self._pa.py_buffer(offsets), self._pa.py_buffer(data * n))
        return pd.array(self._pa.chunked_array([packed]), dtype="str")

    def release(self, name: str) -> None:
        """Forget a column once the frame has it (only with a single backend)."""
        if name in self._open:
            self._open[name] = []
            self._sealed[name] = []


class Results:
    """The answer side of one backend's rows, column by column (filled as answers arrive)."""

    def __init__(self, n: int) -> None:
        self.response: list[str | None] = [None] * n
        self.parsed: list[Any] = [None] * n
        self.score = array("d", [_NAN]) * n
        self.unparseable = bytearray(n)
        self.detail: list[str | None] = [None] * n
        self.error: list[str | None] = [None] * n
        self.latency = array("d", [0.0]) * n
        self.cached = bytearray(n)
        self.answer_capped = bytearray(n)
        self.hit_token_limit = bytearray(n)
        # Token counts, -1 for unknown: 8 bytes a row instead of a list slot and an int.
        self.tokens_in = array("q", [-1]) * n
        self.tokens_out = array("q", [-1]) * n

    def extend(self, n: int) -> None:
        """Add ``n`` empty rows (rows planned while the run goes)."""
        if not n:
            return
        nones = [None] * n
        self.response.extend(nones)
        self.parsed.extend(nones)
        self.score.extend(array("d", [_NAN]) * n)
        self.unparseable.extend(bytes(n))
        self.detail.extend(nones)
        self.error.extend(nones)
        self.latency.extend(array("d", [0.0]) * n)
        self.cached.extend(bytes(n))
        self.answer_capped.extend(bytes(n))
        self.hit_token_limit.extend(bytes(n))
        self.tokens_in.extend(array("q", [-1]) * n)
        self.tokens_out.extend(array("q", [-1]) * n)

    def row(self, index: int) -> dict[str, Any]:
        tokens_in, tokens_out = self.tokens_in[index], self.tokens_out[index]
        return {
            "response": self.response[index],
            "parsed": self.parsed[index],
            "score": self.score[index],
            "unparseable": bool(self.unparseable[index]),
            "score_detail": self.detail[index],
            "error": self.error[index],
            "latency": self.latency[index],
            "cached": bool(self.cached[index]),
            "hit_token_limit": bool(self.hit_token_limit[index]),
            "tokens_in": None if tokens_in < 0 else tokens_in,
            "tokens_out": None if tokens_out < 0 else tokens_out,
            "answer_capped": bool(self.answer_capped[index]),
        }

    def columns(self) -> dict[str, Any]:
        import numpy as np
        import pandas as pd

        n = len(self.response)

        def tokens(values: array[int]) -> Any:
            data = np.frombuffer(values, dtype=np.int64) if n else np.zeros(0, np.int64)
            return pd.arrays.IntegerArray(data.copy(), data < 0)

        return {
            "response": self.response,
            "parsed": self.parsed,
            "score": np.frombuffer(self.score, dtype=np.float64) if n else [],
            "unparseable": np.frombuffer(bytes(self.unparseable), dtype=np.bool_),
            "score_detail": self.detail,
            "error": self.error,
            "latency": np.frombuffer(self.latency, dtype=np.float64) if n else [],
            "cached": np.frombuffer(bytes(self.cached), dtype=np.bool_),
            "tokens_in": tokens(self.tokens_in),
            "tokens_out": tokens(self.tokens_out),
            "answer_capped": np.frombuffer(bytes(self.answer_capped), dtype=np.bool_),
            "hit_token_limit": np.frombuffer(bytes(self.hit_token_limit), dtype=np.bool_),
        }


def empty_frame() -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame(columns=list(RESULT_COLUMNS))
    for column in ("severity", "edit_rate", "score", "latency"):
        frame[column] = frame[column].astype(float)
    for column in ("changed", "unparseable", "cached", "hit_token_limit", "answer_capped"):
        frame[column] = frame[column].astype(bool)
    frame["replicate"] = frame["replicate"].astype(int)
    for column in ("tokens_in", "tokens_out"):
        frame[column] = frame[column].astype("Int64")
    return frame


def build_frame(rows: Rows, plans: list[Plan], results: list[Results]) -> pd.DataFrame:
    """Assemble the results frame: backends in order, rows in variant order.

    Columns are made one at a time (string columns packed during the run are taken
    as they are), and with one backend each source column is released once converted,
    so building the frame needs little more memory than the frame itself.
    """
    import pandas as pd

    n = len(rows)
    if not n:
        return empty_frame()
    meta = [f"meta.{key}" for key in rows.meta_keys]
    order = list(RESULT_COLUMNS) + meta
    last = len(plans) - 1
    frames = []
    for b, (plan, res) in enumerate(zip(plans, results)):
        source = {"model": rows.constant(plan.backend.label), **res.columns()}
        converted: dict[str, Any] = {}
        for column in order:
            values = source.pop(column) if column in source else rows.column(column)
            # A one-column DataFrame applies the same type inference as a whole-frame
            # build (str, float64 with NaN for missing meta values, object ...).
            converted[column] = pd.DataFrame({column: values}, copy=False)[column]
            del values
            if b == last:
                rows.release(column)
        results[b] = None  # type: ignore[call-overload]  # its lists were converted
        frames.append(pd.DataFrame(converted, copy=False))
        del converted
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


