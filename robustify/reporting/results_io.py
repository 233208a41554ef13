"""Results on disk: the per-row frame as JSONL, and a saved run read back.

``results.jsonl`` holds one JSON object per results row (NaN written as ``null``); it is
what :func:`load_results` and so every rebuilt report, comparison and ``RunResult.load``
read. ``noise_floor.jsonl`` holds the re-asked clean rows of a noise-floor measurement.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from perturbations.errors import DataError

from robustify.atomic import write_text_atomic
from robustify.records import RESULT_COLUMNS
from robustify.reporting.format import is_missing

__all__ = ["write_results_jsonl", "results_jsonl", "load_results", "read_jsonl",
           "load_noise_floor", "load_choices", "jsonable"]


def jsonable(value: Any) -> Any:
    """A cell as a JSON value: numpy scalars unwrapped, NaN and ``pd.NA`` as None."""
    # Common scalar types first: this runs once per cell of the results frame.
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, int):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return None if np.isnan(value) else float(value)
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if is_missing(value):
        return None
    return str(value)


def _json_column(column: pd.Series) -> list[Any]:
    """One column's cells as JSON values (:func:`jsonable`), converted column-wise where
    the dtype allows: a whole float, int or bool column at once instead of per cell."""
    dtype = column.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "biuf":
        array = column.to_numpy()
        values = array.tolist()
        if dtype.kind == "f":
            for index in np.flatnonzero(np.isnan(array)).tolist():
                values[index] = None
        return values
    return [jsonable(v) for v in column.tolist()]


def results_jsonl(results: pd.DataFrame) -> str:
    """The frame as JSONL text: one object per row, columns in frame order."""
    names = [str(c) for c in results.columns]
    columns = [_json_column(results.iloc[:, i]) for i in range(len(names))]
    dumps = json.dumps
    return "".join(dumps(dict(zip(names, values)), ensure_ascii=False, allow_nan=False) + "\n"
                   for values in zip(*columns))


def write_results_jsonl(results: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write the per-row frame as JSONL (NaN -> null), atomically."""
    return write_text_atomic(path, results_jsonl(results))


def read_jsonl(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Rows of a JSONL file as a frame; a bad line is named in the error.

    Raises:
        DataError: a line that is not JSON (path and line number given).
    """
    path = Path(path)
    rows = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DataError(f"not JSON: {exc.msg}", path=str(path), line=number) from None
    return pd.DataFrame(rows)


def load_results(run_dir: str | os.PathLike[str]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read a saved run: ``results.jsonl`` (or ``results.parquet``) and ``manifest.json``.

    Returns:
        ``(results, manifest)``; the manifest is ``{}`` when the file is absent.

    Raises:
        DataError: no results file, or a line that is not JSON (the line is named).
    """
    run_dir = Path(run_dir)
    jsonl, parquet = run_dir / "results.jsonl", run_dir / "results.parquet"
    if jsonl.is_file():
        results = read_jsonl(jsonl)
    elif parquet.is_file():
        results = pd.read_parquet(parquet)
    else:
        raise DataError(f"{run_dir}: no results.jsonl or results.parquet (is this a run folder?)",
                        path=str(run_dir))
    ordered = [c for c in RESULT_COLUMNS if c in results.columns]
    results = results[ordered + [c for c in results.columns if c not in ordered]]
    manifest_path = run_dir / "manifest.json"
    manifest: dict[str, Any] = {}
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"not JSON: {exc.msg}", path=str(manifest_path),
                            line=exc.lineno) from None
    return results, manifest


def load_noise_floor(run_dir: str | os.PathLike[str], results: pd.DataFrame
                     ) -> pd.DataFrame | None:
    """The noise floor of a saved run (``noise_floor.jsonl`` beside its results), if measured.

    Args:
        run_dir: The run folder.
        results: Its results (their clean rows are the first ask of every item).

    Returns:
        :func:`robustify.analysis.noise_floor` of the clean rows and their repeats, or
        None when the run has no ``noise_floor.jsonl``.
    """
    from robustify.analysis import CLEAN, noise_floor

    path = Path(run_dir) / "noise_floor.jsonl"
    if not path.is_file():
        return None
    clean = results.loc[results["spec"] == CLEAN].assign(repeat=0)
    return noise_floor(pd.concat([clean, read_jsonl(path)], ignore_index=True))


_VARIANT_ID = re.compile(r'"variant_id":\s*"([^"]*)"')


def load_choices(path: str | os.PathLike[str], variant_ids: set[str]) -> dict[str, list[str]]:
    """Answer options of the given variants, read from a run's ``variants.jsonl``.

    Only lines naming one of ``variant_ids`` are parsed; a missing or unreadable file
    gives an empty mapping (the report then says the options were not recorded).
    """
    out: dict[str, list[str]] = {}
    path = Path(path)
    if not variant_ids or not path.is_file():
        return out
    try:
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                found = _VARIANT_ID.search(line)
                if found is None or found.group(1) not in variant_ids:
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                choices = (record.get("item") or {}).get("choices")
                if isinstance(choices, list):
                    out[str(record.get("variant_id"))] = [str(c) for c in choices]
    except (OSError, UnicodeDecodeError):
        return {}
    return out
