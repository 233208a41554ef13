"""A loopback fleet: several OpenAI-compatible servers (one port each) playing replicas.

Each endpoint is a :class:`~tests.robustify.fake_openai_server.FakeOpenAIServer` (its own
thread and event loop) that also counts the chat calls it answered. One can be told to
fail (every chat request gets a 5xx), to slow down, to die (its port closes and the
connections in flight are dropped) or to die midway (after answering N calls), and be
revived on the same port::

    with FleetServer(3, latency=0.02) as fleet:
        spec = f"openai:fake@{fleet.spec_urls}"
        fleet.fail(1)                 # endpoint 1 answers 503 from now on
        fleet.slow(2, 1.0)            # endpoint 2 answers 1 s later than the others
        fleet.die_after(0, 50)        # endpoint 0 closes after its 50th answer
        fleet.answered                # [answers per endpoint]

Standalone (for benchmarks that want the fleet's CPU out of their process)::

    python -m tests.robustify.fleet_server --endpoints 8 --latency 0.5 --die 3:400

prints the comma-separated base URLs on its first line and serves until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from typing import Any, Sequence

from tests.robustify.fake_openai_server import FakeOpenAIServer, Fault

__all__ = ["Endpoint", "FleetServer", "main"]


class Endpoint(FakeOpenAIServer):
    """One replica: a fake server that counts its answered chat calls and can die midway."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.answered = 0
        """Chat calls answered with HTTP 200."""
        self.die_at: int | None = None
        self.dying = False
        self.dead = threading.Event()

    async def _send_raw(self, writer: asyncio.StreamWriter, rec: Any, status: int,
                        data: bytes, headers: dict[str, str] | None = None) -> bool:
        if rec.path.endswith("/chat/completions"):
            if self.dying:  # between the last answer and the port closing: drop
                writer.transport.abort()
                return False
            if status == 200:
                self.answered += 1
                if self.die_at is not None and self.answered >= self.die_at:
                    self.die_at, self.dying = None, True
                    ok = await super()._send_raw(writer, rec, status, data, headers)
                    # stop() joins this loop's thread: call it from another thread
                    threading.Thread(target=self.kill, daemon=True).start()
                    return ok
        return await super()._send_raw(writer, rec, status, data, headers)

    def kill(self) -> None:
        """Close the port and drop every connection (calls in flight get no answer)."""
        self.stop()
        self.dead.set()


class FleetServer:
    """``n`` loopback endpoints serving the same fake model.

    Args:
        n: Number of endpoints.
        latency: Seconds before each answer, on every endpoint.
        record: Keep every request (off for benchmarks).
    """

    def __init__(self, n: int, *, latency: float = 0.0, record: bool = True) -> None:
        self.latency = latency
        self.record = record
        self.endpoints = [Endpoint(latency=latency, record=record) for _ in range(n)]

    def start(self) -> "FleetServer":
        """Start every endpoint (each on a free port)."""
        for ep in self.endpoints:
            ep.start()
        return self

    def stop(self) -> None:
        """Stop every endpoint still running."""
        for ep in self.endpoints:
            ep.stop()

    def __enter__(self) -> "FleetServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def urls(self) -> list[str]:
        """Base URLs, in endpoint order."""
        return [ep.base_url for ep in self.endpoints]

    @property
    def spec_urls(self) -> str:
        """``URL1,URL2,...`` for an ``openai:NAME@...`` spec."""
        return ",".join(self.urls)

    @property
    def answered(self) -> list[int]:
        """Chat calls each endpoint answered with HTTP 200."""
        return [ep.answered for ep in self.endpoints]

    def fail(self, i: int, status: int = 503) -> None:
        """Endpoint ``i`` answers every chat request with ``status`` until :meth:`heal`."""
        self.endpoints[i].add_rule(Fault.server_error(status, "replica is unhealthy"),
                                   when=lambda messages: True)

    def slow(self, i: int, seconds: float) -> None:
        """Endpoint ``i`` answers ``seconds`` later than the others until :meth:`heal`."""
        self.endpoints[i].add_rule(Fault.delay(seconds), when=lambda messages: True)

    def heal(self, i: int) -> None:
        """Endpoint ``i`` behaves again."""
        self.endpoints[i].clear_faults()

    def kill(self, i: int) -> None:
        """Endpoint ``i`` dies now: its port closes, calls in flight are dropped."""
        self.endpoints[i].kill()

    def die_after(self, i: int, answers: int) -> None:
        """Endpoint ``i`` dies right after answering its ``answers``-th call."""
        self.endpoints[i].die_at = answers

    def revive(self, i: int) -> None:
        """Restart a dead endpoint on its old port (counters kept)."""
        old = self.endpoints[i]
        for _ in range(50):  # the old socket may linger a moment
            new = Endpoint(latency=self.latency, record=self.record, port=old.port)
            new.answered = old.answered
            try:
                new.start()
            except RuntimeError:
                time.sleep(0.1)
                continue
            self.endpoints[i] = new
            return
        raise RuntimeError(f"endpoint {i} could not be revived on port {old.port}")


def main(argv: Sequence[str] | None = None) -> None:
    """Serve a fleet until interrupted; prints the comma-separated base URLs first."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--endpoints", type=int, default=2)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--die", default=None, metavar="INDEX:ANSWERS",
                        help="endpoint INDEX dies after answering ANSWERS calls")
    args = parser.parse_args(argv)
    fleet = FleetServer(args.endpoints, latency=args.latency, record=False).start()
    if args.die:
        index, _, answers = args.die.partition(":")
        fleet.die_after(int(index), int(answers))
    print(fleet.spec_urls, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        fleet.stop()


if __name__ == "__main__":
    main()
