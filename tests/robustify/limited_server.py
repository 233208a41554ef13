"""A loopback OpenAI-compatible server with a hidden concurrency limit.

Two ways a real provider pushes back, each played by :class:`LimitedServer`:

* ``mode="refuse"``: more than ``limit`` chat requests in flight and the extra ones get
  HTTP 429 at once (a hosted API's rate limit);
* ``mode="queue"``: only ``limit`` requests are served at a time and the others wait
  their turn, so latency grows with the number in flight (a vLLM or TGI server with
  ``limit`` slots).

Used by ``tests/robustify/test_adaptive.py`` and the ``adaptive`` figure of
``benchmarks/remote.py``; as a process::

    python -m tests.robustify.limited_server --latency 0.1 --limit 40 --mode refuse
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any, Sequence

from tests.robustify.fake_openai_server import FakeOpenAIServer, _error_body, serve_until_killed

__all__ = ["LimitedServer", "main"]


class LimitedServer(FakeOpenAIServer):
    """:class:`FakeOpenAIServer` that serves at most ``limit`` chat requests at a time.

    Args:
        limit: The hidden limit (chat requests served at once).
        mode: ``"refuse"`` (429 above the limit) or ``"queue"`` (wait above it).
        retry_after: ``Retry-After`` seconds sent with a 429 (``None``: no header).
        **kwargs: As for :class:`FakeOpenAIServer` (``latency`` ...).
    """

    def __init__(self, *, limit: int, mode: str = "refuse", retry_after: float | None = None,
                 **kwargs: Any) -> None:
        if mode not in ("refuse", "queue"):
            raise ValueError(f"mode must be 'refuse' or 'queue', got {mode!r}")
        super().__init__(**kwargs)
        self.limit = int(limit)
        self.mode = mode
        self.retry_after = retry_after
        self.refused = 0
        self._serving = 0
        self._slots: asyncio.Semaphore | None = None
        # time-weighted number served at once: integral and the time it covers
        self._area = 0.0
        self._since: float | None = None
        self._first: float | None = None

    def _mark(self, change: int) -> None:
        now = time.monotonic()
        if self._since is not None:
            self._area += self._serving * (now - self._since)
        if self._first is None:
            self._first = now
        self._since = now
        self._serving += change

    def stats(self) -> dict[str, Any]:
        """The base counters, plus ``refused`` and ``mean_serving`` (time-weighted)."""
        out = super().stats()
        span = (self._since - self._first) if self._since and self._first else 0.0
        out.update({"refused": self.refused, "limit": self.limit, "mode": self.mode,
                    "mean_serving": self._area / span if span > 0 else 0.0})
        return out

    async def _completion(self, writer: asyncio.StreamWriter, rec: Any, body: Any) -> bool:
        if self.mode == "refuse":
            if self._serving >= self.limit:
                self.refused += 1
                headers = ({"Retry-After": f"{self.retry_after:g}"}
                           if self.retry_after is not None else None)
                return await self._send(writer, rec, 429, _error_body(
                    "Rate limit reached: too many requests in flight",
                    "rate_limit_exceeded", None), headers)
            self._mark(+1)
            try:
                return await super()._completion(writer, rec, body)
            finally:
                self._mark(-1)
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.limit)
        async with self._slots:
            self._mark(+1)
            try:
                return await super()._completion(writer, rec, body)
            finally:
                self._mark(-1)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve until interrupted; prints the base URL on stdout (first line)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--limit", type=int, required=True)
    parser.add_argument("--mode", choices=("refuse", "queue"), default="refuse")
    parser.add_argument("--retry-after", type=float, default=None)
    args = parser.parse_args(argv)
    serve_until_killed(LimitedServer(limit=args.limit, mode=args.mode,
                                     retry_after=args.retry_after, latency=args.latency,
                                     record=False))


if __name__ == "__main__":
    main()
