"""Flat exports of clean items and variants for other harnesses (lm-eval, inspect).

One row per clean item and per variant, with plain columns: ``id`` (the variant id),
``item_id``, ``spec``, ``transform``, ``severity``, ``severity_label``, ``replicate``,
``changed``, ``task``, ``input`` (the question with its passage and lettered options, as
one text), ``question``, ``context``, ``choices`` (a list; JSON text in CSV) and
``target``. Label sets are not repeated per row: a classification task's labels go to a
``labels.json`` beside the rows (``hf``: into the folder and its dataset card).

Formats (:data:`EXPORT_FORMATS`):

* ``csv``: ``OUT.csv`` (+ ``OUT.labels.json``);
* ``jsonl-flat``: ``OUT.jsonl`` (+ ``OUT.labels.json``);
* ``hf``: a folder. With ``datasets`` installed, written by ``save_to_disk`` (read it
  with ``datasets.load_from_disk``); otherwise ``data.jsonl`` that
  ``datasets.load_dataset("json", data_files=...)`` reads. Both with a ``README.md``
  dataset card and ``labels.json``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Iterable

from perturbations import CLEAN, Item, Variant
from perturbations.records import choice_letter

from robustify.atomic import write_text_atomic

__all__ = ["EXPORT_FORMATS", "EXPORT_COLUMNS", "flat_rows", "flat_input", "label_sets",
           "export_variants"]

EXPORT_FORMATS = ("csv", "jsonl-flat", "hf")
"""Names accepted by ``perturb --export``."""

EXPORT_COLUMNS = ("id", "item_id", "spec", "transform", "severity", "severity_label",
                  "replicate", "changed", "task", "input", "question", "context", "choices",
                  "target")
"""The columns of every export, in order."""


def flat_input(item: Item) -> str:
    """The item as one text: passage, question, then ``A. option`` lines."""
    parts = []
    if item.context:
        parts.append(f"{item.context}\n\n")
    parts.append(item.input)
    for index, option in enumerate(item.choices or ()):
        parts.append(f"\n{choice_letter(index)}. {option}")
    return "".join(parts)


def _row(variant: Variant) -> dict[str, Any]:
    item = variant.item
    return {
        "id": variant.variant_id, "item_id": item.id, "spec": variant.spec,
        "transform": variant.transform, "severity": variant.severity,
        "severity_label": variant.severity_label, "replicate": variant.replicate,
        "changed": variant.changed, "task": item.task, "input": flat_input(item),
        "question": item.input, "context": item.context,
        "choices": list(item.choices) if item.choices is not None else None,
        "target": item.target,
    }


def flat_rows(items: Iterable[Item], variants: Iterable[Variant], *, seed: int = 0,
              version: str = "") -> list[dict[str, Any]]:
    """One flat row per clean item (spec ``clean``), then one per variant."""
    rows = [_row(Variant.clean(item, seed=seed, version=version)) for item in items]
    rows.extend(_row(v) for v in variants if v.spec != CLEAN)
    return rows


def label_sets(items: Iterable[Item]) -> dict[str, list[str]]:
    """Per task kind with a label set (classification), the labels, sorted."""
    labels: set[str] = set()
    for item in items:
        if item.task == "classification":
            labels.update(str(x) for x in item.metadata.get("labels") or ())
            labels.add(item.target)
    return {"classification": sorted(labels)} if labels else {}


def _csv_text(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "choices": (json.dumps(row["choices"], ensure_ascii=False)
                                            if row["choices"] is not None else "")})
    return buffer.getvalue()


def _jsonl_text(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def _card(rows: list[dict[str, Any]], labels: dict[str, list[str]], how: str) -> str:
    specs = list(dict.fromkeys(r["spec"] for r in rows))
    items = len({r["item_id"] for r in rows})
    front = (["---", "configs:", "- config_name: default", "  data_files: data.jsonl", "---",
              ""] if "load_dataset" in how else [])
    lines = [*front, "# robustify variants", "",
             f"{items} clean items and {len(rows) - items} variants (specs: "
             f"{', '.join(specs)}), one row each. `spec` is `clean` for the originals; pair "
             f"rows on `item_id`. `input` is the question with its passage and lettered "
             f"options as one text; `target` is the gold answer (a letter for multiple "
             f"choice).", "", f"Load with: `{how}`", ""]
    if labels:
        lines += ["Label sets (also in `labels.json`):", ""]
        lines += [f"- {task}: {', '.join(names)}" for task, names in labels.items()]
        lines.append("")
    return "\n".join(lines)


def export_variants(rows: list[dict[str, Any]], labels: dict[str, list[str]], out: Path,
                    fmt: str) -> tuple[list[Path], str]:
    """Write ``rows`` in ``fmt``; return the files written and a one-line note.

    Args:
        rows: :func:`flat_rows`.
        labels: :func:`label_sets` (written beside the rows, never per row).
        out: A file (``csv``, ``jsonl-flat``; the extension is added when missing) or a
            folder (``hf``).
        fmt: One of :data:`EXPORT_FORMATS`.
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}")
    labels_text = json.dumps(labels, ensure_ascii=False, indent=1) + "\n"
    if fmt in ("csv", "jsonl-flat"):
        suffix = ".csv" if fmt == "csv" else ".jsonl"
        path = out if out.suffix.lower() == suffix else out.with_name(out.name + suffix)
        write_text_atomic(path, _csv_text(rows) if fmt == "csv" else _jsonl_text(rows))
        written = [path]
        if labels:
            label_path = path.with_name(path.stem + ".labels.json")
            write_text_atomic(label_path, labels_text)
            written.append(label_path)
        return written, ""
    out.mkdir(parents=True, exist_ok=True)
    try:
        import datasets
    except ImportError:
        datasets = None
    written = []
    if datasets is not None:
        from datasets.utils import logging as ds_logging

        bars = ds_logging.is_progress_bar_enabled()
        ds_logging.disable_progress_bar()  # a bar per shard is noise in a CLI
        try:
            datasets.Dataset.from_list(rows).save_to_disk(str(out))
        finally:
            if bars:
                ds_logging.enable_progress_bar()
        how = f"datasets.load_from_disk({str(out)!r})"
        note = ""
        written.append(out / "dataset_info.json")
    else:
        write_text_atomic(out / "data.jsonl", _jsonl_text(rows))
        written.append(out / "data.jsonl")
        how = f"datasets.load_dataset('json', data_files={str(out / 'data.jsonl')!r})"
        note = (f"datasets is not installed: wrote data.jsonl, which {how} reads "
                f"(pip install 'robustify[hf]' for a save_to_disk folder)")
    write_text_atomic(out / "README.md", _card(rows, labels, how))
    written.append(out / "README.md")
    if labels:
        write_text_atomic(out / "labels.json", labels_text)
        written.append(out / "labels.json")
    return written, note
