"""Remote throughput: the runner against the concurrency limit and hand-written loops.

A loopback OpenAI-compatible server (``tests/robustify/fake_openai_server.py``, in its
own process so its CPU is not ours) answers every request after a fixed latency ``L``.
``N`` requests at concurrency ``C`` cannot finish faster than ``N / C x L`` seconds: the
*limit*. Efficiency = limit / wall time.

Contenders, on the same server in the same run, in rotating order:

* ``runner``: ``robustify.runner.execute.run_queries`` with an ``openai:fake@URL`` backend at
  concurrency ``C``, a fresh response cache (so its writes are included), scoring on.
* ``bare create``: ``openai.AsyncOpenAI`` + ``asyncio.Semaphore(C)`` + ``gather`` over
  ``client.chat.completions.create`` (the usual hand-written loop).
* ``bare post``: the same loop calling ``client.post("/chat/completions", ...)``, which
  skips the SDK's per-request TypedDict transform: the best hand-written loop we know.

Each contender gets a fresh client (connections are opened inside the timed run for
all of them alike), and the best of the rounds is kept. CPU seconds are this process's
user + system time during the run, divided by ``N``: the client's cost per request.

**Adaptive concurrency** (:func:`adaptive_level`): the runner with no fixed concurrency
against ``tests/robustify/limited_server.py``, which has a hidden limit of ``H`` calls in
flight and either refuses the extra ones with HTTP 429 or queues them (latency grows).
The figure is the level the runner settled at over ``H`` (mark: within 20%).

With ``profile=True`` the runner is also sampled by py-spy in a child process and its
CPU is split by where the leaf frames are (SDK, HTTP stack, event loop, runner ...).

Run: ``python -m benchmarks.remote [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

from benchmarks.common import (ROOT, FakeServerProcess, Figure, alternate, check, load_average,
                               print_figures, timed)

__all__ = ["measure", "bare_loop", "profile_runner", "adaptive_level", "main"]

LATENCY = 0.25


def _prompts(n: int) -> tuple[list[Any], list[list[dict[str, str]]]]:
    """``n`` distinct clean variants and their chat messages (the runner's own prompts)."""
    from perturbations import Variant
    from robustify.prompts import build_messages
    from benchmarks.perturb_throughput import build_items

    # A reference number keeps every prompt distinct, so the runner (which sends each
    # distinct prompt once) and the bare loops make the same N requests.
    variants = [Variant.clean(dataclasses.replace(item, input=f"{item.input} (ref {i})"))
                for i, item in enumerate(build_items(n))]
    return variants, [build_messages(v.item) for v in variants]


async def bare_loop(base_url: str, messages: Sequence[list[dict[str, str]]], concurrency: int,
                    *, post: bool = False) -> list[str]:
    """The hand-written baseline: one AsyncOpenAI client, a semaphore and ``gather``."""
    import httpx2
    import openai
    from openai.types.chat import ChatCompletion

    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    client = openai.AsyncOpenAI(base_url=base_url, api_key="not-needed", max_retries=0,
                                http_client=openai.DefaultAsyncHttpxClient(limits=limits))
    semaphore = asyncio.Semaphore(concurrency)
    params = {"temperature": 0.0, "max_tokens": 48, "seed": 0}
    options = {"security": {"bearer_auth": True}}

    async def one(prompt: list[dict[str, str]]) -> str:
        async with semaphore:
            if post:
                response = await client.post(
                    "/chat/completions", body={"model": "fake", "messages": prompt, **params},
                    cast_to=ChatCompletion, options=options)
            else:
                response = await client.chat.completions.create(
                    model="fake", messages=prompt, **params)  # type: ignore[arg-type]
            return response.choices[0].message.content or ""

    try:
        return await asyncio.gather(*(one(m) for m in messages))
    finally:
        await client.close()


def _runner(base_url: str, variants: list[Any], concurrency: int | None, workdir: Path
            ) -> Callable[[], Any]:
    from robustify.runner.cache import ResponseCache
    from robustify.models import parse_model_spec
    from robustify.prompts import build_messages
    from robustify.runner.execute import run_queries
    from robustify.scoring import score_answer

    def run() -> Any:
        backend = parse_model_spec(f"openai:fake@{base_url}", concurrency=concurrency)
        with tempfile.TemporaryDirectory(dir=workdir) as tmp, \
                ResponseCache(Path(tmp) / "fresh.sqlite") as cache:
            frame = run_queries(variants, [backend], build_messages=build_messages,
                                score=score_answer, cache=cache, progress=False)
        stats = frame.attrs["run_stats"][backend.label]
        if frame["error"].notna().any() or stats["calls"] != len(variants):
            raise RuntimeError(f"runner run failed: {frame['error'].dropna().head(3).tolist()}")
        return stats

    return run


def _one_level(n: int, concurrency: int, rounds: int, workdir: Path) -> dict[str, Any]:
    """Time the three contenders at one concurrency on a fresh server; best of rounds."""
    variants, messages = _prompts(n)
    limit = n / concurrency * LATENCY
    best: dict[str, dict[str, float]] = {}
    with FakeServerProcess(LATENCY) as server:
        contenders: dict[str, Callable[[], Any]] = {
            "runner": _runner(server.base_url, variants, concurrency, workdir),
            "bare create": lambda: asyncio.run(bare_loop(server.base_url, messages, concurrency)),
            "bare post": lambda: asyncio.run(bare_loop(server.base_url, messages, concurrency,
                                                       post=True)),
        }
        for name in alternate(list(contenders), rounds):
            wall, cpu, _ = timed(contenders[name])
            if name not in best or wall < best[name]["wall"]:
                best[name] = {"wall": wall, "cpu": cpu}
        stats = server.stats()
    out: dict[str, Any] = {"n": n, "concurrency": concurrency, "latency": LATENCY,
                           "limit_s": limit, "load": load_average()[0],
                           "server_max_in_flight": stats["max_in_flight"],
                           "server_completions": stats["completions"]}
    for name, b in best.items():
        out[name] = {**b, "efficiency": limit / b["wall"], "cpu_ms_per_request": b["cpu"] / n * 1e3,
                     "mean_in_flight": n * LATENCY / b["wall"]}
    return out


class _LimitedServerProcess(FakeServerProcess):
    """``tests/robustify/limited_server.py`` in its own process."""

    def __init__(self, latency: float, limit: int, mode: str) -> None:
        super().__init__(latency, module="tests.robustify.limited_server")
        self.limit = limit
        self.mode = mode

    def __enter__(self) -> "_LimitedServerProcess":
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module, "--latency", str(self.latency), "--limit",
             str(self.limit), "--mode", self.mode], cwd=str(ROOT), stdout=subprocess.PIPE,
            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert self.proc.stdout is not None
        self.base_url = self.proc.stdout.readline().strip()
        if not self.base_url.startswith("http"):
            self.close()
            raise RuntimeError("the limited server did not start")
        return self


def adaptive_level(n: int, limit: int, mode: str, workdir: Path,
                   latency: float = LATENCY) -> dict[str, Any]:
    """Run ``n`` prompts with adaptive concurrency against a hidden limit; what it found."""
    variants, _ = _prompts(n)
    with _LimitedServerProcess(latency, limit, mode) as server:
        wall, cpu, stats = timed(_runner(server.base_url, variants, None, workdir))
        served = server.stats()
    level = stats["concurrency"]
    return {"n": n, "hidden_limit": limit, "mode": mode, "latency": latency, "wall": wall,
            "limit_s": n * latency / limit, "efficiency": n * latency / limit / wall,
            "level": level, "ratio": level["settled"] / limit, "server": served,
            "load": load_average()[0]}


ADAPTIVE_LIMIT = 32
"""The hidden limit of the adaptive figures (calls the server takes at once)."""
ADAPTIVE_LATENCY = 0.5
"""Server latency of the adaptive figures: 64 calls/s at the limit, so a busy 2-core
client's own delays stay small beside the latency it reads."""


def adaptive_figures(raw: dict[str, Any], workdir: Path, quick: bool = False) -> list[Figure]:
    """Adaptive concurrency against a hidden limit, refusing and queueing; mark 0.8-1.2."""
    figures = []
    n = 400 if quick else 1500
    for mode, how in (("refuse", "429 above it"), ("queue", "latency grows above it")):
        found = adaptive_level(n, ADAPTIVE_LIMIT, mode, workdir, latency=ADAPTIVE_LATENCY)
        raw[f"adaptive_{mode}"] = found
        level, ratio = found["level"], found["ratio"]
        figures.append(Figure(
            "remote", f"adaptive level / hidden limit ({mode})", ratio, "x", "0.8-1.2",
            0.8 <= ratio <= 1.2,
            f"hidden limit {ADAPTIVE_LIMIT} ({how}), settled at {level['settled']} (start "
            f"{level['start']}, peak {level['peak']}, cuts: {level['cuts_refused']} on 429, "
            f"{level['cuts_latency']} on latency); N={n}, L={found['latency']}s, "
            f"efficiency {found['efficiency']:.2f}, server mean busy "
            f"{found['server']['mean_serving']:.1f}; load {found['load']:.1f}", found))
    return figures


_PACKAGES = (
    ("robustify/runner.py", "runner: planning, rows, frame"),
    ("robustify/scoring.py", "scoring"),
    ("robustify/prompts.py", "prompt building"),
    ("robustify/cache.py", "cache keys (sha256 of canonical JSON)"),
    ("robustify/models/", "backend + retry wrapper"),
    ("openai/", "openai SDK: request build, response parse"),
    ("pydantic", "openai SDK: request build, response parse"),
    ("httpx", "HTTP stack: httpx2, httpcore2, h11, anyio"),
    ("httpcore", "HTTP stack: httpx2, httpcore2, h11, anyio"),
    ("h11/", "HTTP stack: httpx2, httpcore2, h11, anyio"),
    ("anyio/", "HTTP stack: httpx2, httpcore2, h11, anyio"),
    ("sniffio", "HTTP stack: httpx2, httpcore2, h11, anyio"),
    ("pandas", "runner: planning, rows, frame"),
    ("numpy", "runner: planning, rows, frame"),
    ("pyarrow", "runner: planning, rows, frame"),
)


def _bucket(frames: list[str]) -> str | None:
    """Where one sample's CPU went, or None for an idle wait.

    The innermost frame that belongs to a known package names the part; stdlib helpers
    (asyncio, json, typing, ipaddress ...) count for whoever called them.
    """
    leaf = frames[-1]
    if "EpollSelector.select" in leaf or "BaseSelector" in leaf:
        return None  # the loop waiting for sockets: idle
    if "SocketTransport.write" in leaf or "sock_send" in leaf:
        return "socket writes (send syscalls on loopback)"
    for frame in reversed(frames):
        if frame.startswith(("run_queries (", "run_sync (")):
            break  # the root of the thread: only the event loop runs between it and here
        for needle, name in _PACKAGES:
            if needle in frame:
                return name
    if "asyncio/" in leaf:
        return "event loop (asyncio) itself"
    return "other (imports, GC ...)"


def profile_runner(base_url: str, n: int, concurrency: int, workdir: Path) -> dict[str, Any] | None:
    """Sample the runner with py-spy in a child process; CPU share per part.

    Returns ``None`` when py-spy is not installed. Counted: samples of the thread that
    runs the event loop (not while it waits in ``select``) and the cache writer's
    commits; sleeping or waiting pool threads are left out (py-spy reports some of them
    as busy).
    """
    pyspy = shutil.which("py-spy")
    if pyspy is None:
        return None
    raw = workdir / "runner.pyspy.txt"
    cmd = [pyspy, "record", "--format", "raw", "--rate", "250", "--output", str(raw), "--",
           sys.executable, "-m", "benchmarks.remote", "--profile-child", base_url, str(n),
           str(concurrency)]
    done = subprocess.run(cmd, cwd=str(ROOT), capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode != 0 or not raw.exists():
        return {"error": (done.stderr or done.stdout)[-500:]}
    buckets: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if "_write_loop" in stack:
            if "_write_loop" in frames[-1]:
                continue  # the writer sleeping or waiting for answers
            bucket: str | None = "cache writer thread (SQLite commits)"
        elif "run_queries (" in stack and "_profile_child" in stack:
            bucket = _bucket(frames)
        else:
            continue
        if bucket is not None:
            buckets[bucket] += int(count)
    total = sum(buckets.values())
    return {"samples": total,
            "shares": {k: v / total for k, v in buckets.most_common()} if total else {}}


def _profile_child(base_url: str, n: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        variants, _ = _prompts(n)
        _runner(base_url, variants, concurrency, Path(tmp))()


def measure(quick: bool = False, profile: bool = True) -> tuple[dict[str, Any], list[Figure]]:
    """Run both concurrency levels (and the profile); return raw numbers and figures."""
    n = 500 if quick else 2000
    levels = ((64, 1 if quick else 2), (256, 1 if quick else 2))
    raw: dict[str, Any] = {}
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for concurrency, rounds in levels:
            level = _one_level(n, concurrency, rounds, workdir)
            raw[f"c{concurrency}"] = level
            runner, create, post = level["runner"], level["bare create"], level["bare post"]
            note = (f"N={n}, L={LATENCY}s, limit {level['limit_s']:.2f}s, runner "
                    f"{runner['wall']:.2f}s; load {level['load']:.1f}")
            if concurrency == 64:
                figures.append(Figure("remote", f"efficiency at C={concurrency} (limit/wall)",
                                      runner["efficiency"], "", ">= 0.85",
                                      check(runner["efficiency"], ">= 0.85"), note, level))
            else:
                figures.append(Figure("remote", f"efficiency at C={concurrency} (CPU bound)",
                                      runner["efficiency"], "", "", None,
                                      f"{note}; server saw up to {level['server_max_in_flight']} "
                                      f"in flight, mean {runner['mean_in_flight']:.0f}", level))
            for name, base in (("bare create", create), ("bare post", post)):
                ratio = base["wall"] / runner["wall"]
                figures.append(Figure("remote", f"runner / {name} throughput, C={concurrency}",
                                      ratio, "x", ">= 0.95", check(ratio, ">= 0.95"),
                                      f"{name}: {base['wall']:.2f}s, eff {base['efficiency']:.2f}"))
            figures.append(Figure("remote", f"client CPU per request, C={concurrency}",
                                  runner["cpu_ms_per_request"], "ms",
                                  note=f"bare create {create['cpu_ms_per_request']:.2f} ms, "
                                       f"bare post {post['cpu_ms_per_request']:.2f} ms"))
        figures.extend(adaptive_figures(raw, workdir, quick))
        if profile and not quick:
            with FakeServerProcess(LATENCY) as server:
                prof = profile_runner(server.base_url, n, 64, workdir)
            raw["profile"] = prof
            if prof and prof.get("shares"):
                top = "; ".join(f"{k} {v:.0%}" for k, v in prof["shares"].items() if v >= 0.02)
                figures.append(Figure("remote", "where the runner's CPU goes (py-spy, C=64)",
                                      None, note=top, extra=prof))
    return raw, figures


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``--quick``; ``--profile-child URL N C`` is internal."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--profile-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.profile_child:
        url, n, c = args.profile_child
        _profile_child(url, int(n), int(c))
        return
    _, figures = measure(args.quick, profile=not args.no_profile)
    print_figures(figures)


if __name__ == "__main__":
    main()
