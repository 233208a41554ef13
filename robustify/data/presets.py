"""The built-in ``--format`` names: file formats (jsonl, json, csv, tsv, parquet, hf) and
benchmark presets (mmlu, gsm8k, boolq, arc, intent), registered in the order ``--help``
lists them. A preset says which columns hold which item field, the task kind, and small
per-row fix-ups (GSM8K's ``#### 42`` answers, MMLU's subject from the file name).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from robustify.data.formats import FormatInfo, RowError, register_format

__all__: list[str] = []


def _gsm8k_row(fields: dict[str, Any]) -> None:
    # GSM8K answers are a worked solution whose last line is "#### <number>": the number
    # is the gold answer; the worked text stays available for analysis and few-shot use.
    answer = fields.get("target")
    if not isinstance(answer, str) or "####" not in answer:
        raise RowError("a GSM8K answer must end with '#### <number>'", field="target")
    final = answer.rsplit("####", 1)[1].strip().replace(",", "")
    if not final:
        raise RowError("the GSM8K answer has nothing after '####'", field="target")
    fields["target"] = final
    fields["metadata"]["solution"] = answer


_SPLIT_SUFFIX = re.compile(r"_(?:test|dev|val|validation|train|auxiliary_train)$")


def _mmlu_metadata(path: Path) -> dict[str, Any]:
    # MMLU ships one CSV per subject named "<subject>_<split>.csv".
    subject = _SPLIT_SUFFIX.sub("", path.stem)
    return {"subject": subject} if subject else {}


for _info in (
        FormatInfo("jsonl", "One JSON object per line; canonical rows are Item.to_dict() "
                   "(id, input, target, context, choices, task, metadata).", "jsonl"),
        FormatInfo("json", 'A JSON list of objects, or an object {"items": [...]}.', "json"),
        FormatInfo("csv", "Comma-separated values with a header row.", "csv"),
        FormatInfo("tsv", "Tab-separated values with a header row.", "tsv"),
        FormatInfo("parquet", "An Apache Parquet table (needs pyarrow: "
                   "pip install 'robustify[parquet]').", "parquet"),
        FormatInfo("hf", "A folder written by Hugging Face datasets' save_to_disk "
                   "(needs pip install 'robustify[hf]').", "hf"),
        FormatInfo("mmlu", "MMLU CSV without a header: question, the options, answer "
                   "letter; the subject comes from the file name (astronomy_test.csv).",
                   "csv", preset=True, headerless=True, task="multiple_choice",
                   columns={"input": ("question",), "target": ("answer",)},
                   file_metadata=_mmlu_metadata),
        FormatInfo("gsm8k", "GSM8K JSONL: question, worked answer ending '#### 42'; the "
                   "target is the number, the solution goes to metadata['solution'].",
                   None, preset=True, task="numeric",
                   columns={"input": ("question",), "target": ("answer",)},
                   row_hook=_gsm8k_row),
        FormatInfo("boolq", "BoolQ JSONL: question, passage, answer true/false; a yes/no "
                   "task with the passage as context.", None, preset=True, task="yes_no",
                   columns={"input": ("question",), "context": ("passage",),
                            "target": ("answer", "label")}),
        FormatInfo("arc", 'ARC JSONL: {"id", "question": {"stem", "choices": [{"label", '
                   '"text"}]}, "answerKey"}; labels may be 1-4 or A-E.', None, preset=True,
                   task="multiple_choice",
                   columns={"id": ("id",), "input": ("question.stem", "question"),
                            "choices": ("question.choices", "choices"),
                            "target": ("answerKey",)}),
        FormatInfo("intent", "Text + label (CSV, TSV or JSONL): a classification task "
                   "whose label set is read from the data.", None, preset=True,
                   task="classification",
                   columns={"input": ("text", "utterance", "sentence", "query", "input"),
                            "target": ("label", "intent", "category", "target")}),
):
    register_format(_info)


