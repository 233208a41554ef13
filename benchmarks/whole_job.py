"""The whole job: ``python -m robustify run`` end to end against a loopback server.

Everything a user waits for is timed: interpreter start and imports, reading the data,
perturbing, the model calls, scoring, the analysis, the report with its charts and the
terminal summary. The data set is many-label (3,000 customer-support messages over 77
intents, :mod:`benchmarks.whole_job_data`), the noise ``typos@high``, the cache a fresh
file (its writes count), and the model an OpenAI-compatible loopback server in its own
process answering each request after ``L`` = 0.25 s with a model-like reply.

Two figures per concurrency ``C`` (64 and 256):

* **efficiency**: the concurrency limit ``calls x L / C`` over the job's wall time
  (mark >= 0.85);
* **vs the hand-written loop**: the wall time of a script doing only the calls with
  ``openai.AsyncOpenAI`` + ``asyncio.Semaphore(C)`` + ``gather`` over exactly the job's
  distinct prompts (read back from the job's ``variants.jsonl``), divided by the job's
  (mark >= 0.95). Both run as fresh processes, so both pay their start-up.

The job and the loop alternate (best of two rounds at C = 64, one at C = 256). At
C = 256 the limit is about 6 s, where a 2-core machine spends most of the wall on the HTTP client's CPU
(see the ``remote`` section): the hand-written loop is the fairer yardstick there.

Run: ``python -m benchmarks.whole_job [--quick]``; ``--bare URL FILE C`` is internal.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from benchmarks.common import (ROOT, FakeServerProcess, Figure, alternate, check, load_average,
                               print_figures)

__all__ = ["measure", "job_prompts", "main", "LATENCY"]

LATENCY = 0.25
TRANSFORMS = "typos@high"
_LAST_JOB: dict[str, float] = {}


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENAI_API_KEY": "not-needed"}
    env.pop("ROBUSTIFY_CACHE", None)
    return env


def _job(base_url: str, data: Path, concurrency: int, workdir: Path, tag: str
         ) -> tuple[float, Path]:
    """Run the CLI job in a fresh process; (wall seconds, run folder).

    The start and end (``time.monotonic()``) of the last job are kept in
    :data:`_LAST_JOB`, to split its wall time with the server's timestamps.
    """
    out = workdir / f"run-{tag}"
    cmd = [sys.executable, "-m", "robustify", "run", "--data", str(data), "--format", "intent",
           "--model", f"openai:fake@{base_url}", "--transforms", TRANSFORMS,
           "--concurrency", str(concurrency), "--cache", str(workdir / f"cache-{tag}.sqlite"),
           "--out", str(out)]
    started = time.perf_counter()
    _LAST_JOB["start"] = time.monotonic()
    done = subprocess.run(cmd, cwd=str(workdir), env=_env(), capture_output=True, text=True,
                          check=False)
    wall = time.perf_counter() - started
    _LAST_JOB["end"] = time.monotonic()
    if done.returncode != 0:
        raise RuntimeError(f"the job failed ({done.returncode}): {done.stderr[-800:]}")
    return wall, out


def job_prompts(run_dir: Path, requests: bool = False) -> list[list[dict[str, str]]]:
    """The distinct prompts the job sent, rebuilt from its ``variants.jsonl``.

    As the runner does: an unchanged variant reuses its clean answer (no call), and
    identical messages are sent once. ``requests=True`` builds them as the runner does,
    with the per-task request entry (answer budget...) that a
    :class:`robustify.models.requests.RequestBackend` reads.
    """
    from perturbations.records import Variant
    from robustify.prompts import build_messages
    from robustify.runner.requests import RequestBuilder

    build = RequestBuilder() if requests else build_messages

    seen: dict[str, list[dict[str, str]]] = {}
    with (run_dir / "variants.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            variant = Variant.from_dict(json.loads(line))
            if not variant.changed and not variant.is_clean:
                continue
            messages = build(variant.item)
            seen.setdefault(json.dumps(messages, sort_keys=True), messages)
    return list(seen.values())


def _bare(base_url: str, prompts: Path, concurrency: int, workdir: Path) -> float:
    """Time the hand-written loop as a fresh process; wall seconds."""
    cmd = [sys.executable, "-m", "benchmarks.whole_job", "--bare", base_url, str(prompts),
           str(concurrency)]
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=str(ROOT), env=_env(), capture_output=True, text=True,
                          check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"the hand-written loop failed: {done.stderr[-800:]}")
    return wall


def _bare_child(base_url: str, prompts: str, concurrency: int) -> None:
    from benchmarks.remote import bare_loop

    messages = json.loads(Path(prompts).read_text(encoding="utf-8"))
    answers = asyncio.run(bare_loop(base_url, messages, concurrency))
    assert len(answers) == len(messages)


def _one_level(data: Path, concurrency: int, rounds: int, workdir: Path) -> dict[str, Any]:
    best: dict[str, float] = {}
    calls = None
    phases: dict[str, float] = {}
    prompts_file = workdir / "prompts.json"
    with FakeServerProcess(LATENCY, module="benchmarks.whole_job_data") as server:
        for r, name in enumerate(alternate(["job", "bare"], rounds)):
            if name == "job":
                before = server.stats()["completions"]
                wall, out = _job(server.base_url, data, concurrency, workdir,
                                 f"c{concurrency}-{r}")
                after = server.stats()
                made = after["completions"] - before
                if after.get("first_call") is not None and (
                        "job" not in best or wall < best["job"]):
                    phases = {"before_first_call_s": after["first_call"] - _LAST_JOB["start"],
                              "calls_s": after["last_answer"] - after["first_call"],
                              "after_last_answer_s": _LAST_JOB["end"] - after["last_answer"]}
                if calls is None:
                    prompts = job_prompts(out)
                    if len(prompts) != made:
                        raise RuntimeError(f"the job made {made} calls but has "
                                           f"{len(prompts)} distinct prompts")
                    prompts_file.write_text(json.dumps(prompts), encoding="utf-8")
                    calls = made
            else:
                if calls is None:  # the loop needs the job's prompts first
                    continue
                wall = _bare(server.base_url, prompts_file, concurrency, workdir)
            best[name] = min(wall, best.get(name, float("inf")))
        if "bare" not in best:
            best["bare"] = _bare(server.base_url, prompts_file, concurrency, workdir)
    assert calls is not None
    limit = calls * LATENCY / concurrency
    extra = {"phases": phases} if phases else {}
    return {"concurrency": concurrency, "calls": calls, "latency": LATENCY, "limit_s": limit,
            "job_s": best["job"], "bare_s": best["bare"], "efficiency": limit / best["job"],
            "bare_efficiency": limit / best["bare"], "vs_bare": best["bare"] / best["job"],
            "load": load_average()[0], **extra}


def scoring_cost(data: Path, answers: int = 6000) -> dict[str, float]:
    """CPU microseconds to score one answer, and to prepare the label set once.

    Answers are the server's replies to the job's clean prompts (every scorer path).
    """
    from benchmarks.whole_job_data import reply
    from robustify.data import load_items
    from robustify.prompts import build_messages
    from robustify.scoring import score_answer
    from robustify.scoring.labels import LabelSet, label_names

    items = load_items(str(data), format="intent")
    pairs = [(item, reply(build_messages(item))) for item in items[:answers]]
    while len(pairs) < answers:
        pairs += pairs[:answers - len(pairs)]
    score_answer(pairs[0][0], pairs[0][1])  # the label set is prepared here, once
    started = time.process_time()
    for item, text in pairs:
        score_answer(item, text)
    per_answer = (time.process_time() - started) / len(pairs)
    started = time.process_time()
    for item, _ in pairs[:50]:
        LabelSet(label_names(item))
    prepare = (time.process_time() - started) / 50
    return {"per_answer_us": per_answer * 1e6, "prepare_us": prepare * 1e6}


def measure(quick: bool = False) -> tuple[dict[str, Any], list[Figure]]:
    """Both concurrency levels; raw numbers and figures."""
    from benchmarks.whole_job_data import INTENTS, write_dataset

    n = 600 if quick else 3000
    # rounds of (job, loop) in alternating order: two at C=64, one at C=256 (a short run),
    # so the section stays near 2.5 minutes on an idle machine
    rounds = {64: 1 if quick else 2, 256: 1}
    raw: dict[str, Any] = {"items": n, "labels": len(INTENTS), "transforms": TRANSFORMS}
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        data = write_dataset(workdir / "support.csv", n)
        cost = scoring_cost(data, 1000 if quick else 6000)
        raw["scoring"] = cost
        figures.append(Figure("job", "scoring one answer, 77 labels (CPU)",
                              cost["per_answer_us"], "us",
                              note=f"label set prepared once per set: "
                                   f"{cost['prepare_us']:.0f} us (each answer paid that "
                                   f"before)", extra=cost))
        for concurrency in (64, 256):
            level = _one_level(data, concurrency, rounds[concurrency], workdir)
            raw[f"c{concurrency}"] = level
            note = (f"{n} items x {len(INTENTS)} labels, {level['calls']} calls, L={LATENCY}s, "
                    f"limit {level['limit_s']:.1f}s, job {level['job_s']:.1f}s, load "
                    f"{level['load']:.1f}")
            if level.get("phases"):
                p = level["phases"]
                note += (f"; before the first call {p['before_first_call_s']:.1f}s, calls "
                         f"{p['calls_s']:.1f}s, after the last answer "
                         f"{p['after_last_answer_s']:.1f}s")
            figures.append(Figure("job", f"whole job efficiency, C={concurrency}",
                                  level["efficiency"], "", ">= 0.85",
                                  check(level["efficiency"], ">= 0.85"), note, level))
            figures.append(Figure("job", f"whole job / hand-written loop, C={concurrency}",
                                  level["vs_bare"], "x", ">= 0.95",
                                  check(level["vs_bare"], ">= 0.95"),
                                  f"loop {level['bare_s']:.1f}s (efficiency "
                                  f"{level['bare_efficiency']:.2f}), same {level['calls']} "
                                  f"calls"))
    return raw, figures


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``--quick``; ``--bare URL FILE C`` is internal."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--bare", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bare:
        url, prompts, c = args.bare
        _bare_child(url, prompts, int(c))
        return
    _, figures = measure(args.quick)
    print_figures(figures)


if __name__ == "__main__":
    main()
