"""The many-label data set and the model-like loopback server of :mod:`benchmarks.whole_job`.

The data set: ``n`` customer-support messages over 77 intents (a label set the size of
BANKING77's), written as a CSV of ``text,label`` that the ``intent`` preset reads, the
way a user brings their own data. Messages are built from per-intent phrases with
openers and closers chosen by a seeded ``random.Random``: the same ``n`` and seed give
the same bytes. Generated here, so no download and no licence question.

The server: :class:`tests.robustify.fake_openai_server.FakeOpenAIServer` with a fixed
latency and a reply that reads like a small model's answer to the classification prompt,
so every scorer path is used: the bare label (most), the label in a sentence, an alias-like
phrasing, two labels (unparseable) and an echo of the message (long, mentions words).
The reply depends only on the prompt, so reruns and the hand-written loop see the same.
"""

from __future__ import annotations

import csv
import hashlib
import random
from pathlib import Path
from typing import Any, Sequence

__all__ = ["INTENTS", "write_dataset", "reply", "serve"]

# 77 intents: (label, phrases a customer would use for it)
_TOPICS = {
    "card": ("my card", "my debit card", "the card you sent"),
    "account": ("my account", "my profile", "my login"),
    "order": ("my order", "the package", "my parcel"),
    "payment": ("the payment", "my transfer", "the charge"),
    "subscription": ("my subscription", "my plan", "my membership"),
    "app": ("the app", "the website", "the mobile app"),
    "refund": ("my refund", "the money back", "the reimbursement"),
}
_ACTIONS = {
    "activate": "how do I activate {t}",
    "cancel": "I want to cancel {t}",
    "status": "what is the status of {t}",
    "problem": "there is a problem with {t}",
    "change": "I need to change something about {t}",
    "lost": "I think I lost access to {t}",
    "fee": "why is there a fee on {t}",
    "limit": "what is the limit on {t}",
    "delay": "why is {t} taking so long",
    "verify": "how can I verify {t}",
    "close": "please close {t} for good",
}
INTENTS: tuple[str, ...] = tuple(f"{topic}_{action}" for topic in _TOPICS
                                 for action in _ACTIONS)
"""The 77 intent labels (7 topics x 11 actions)."""

_OPENERS = ("", "Hi, ", "Hello there, ", "Good morning, ", "Sorry to bother you but ",
            "Quick question: ", "Urgent: ", "hey ")
_CLOSERS = ("?", ".", ", thanks.", ", please help.", "? I have been waiting all week.",
            "! This is really annoying.", ", can someone call me back?", "")


def write_dataset(path: Path, n: int, seed: int = 0) -> Path:
    """Write ``n`` messages as ``text,label`` CSV (every label used); returns ``path``."""
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["id", "text", "label"])
        for i in range(n):
            label = INTENTS[i % len(INTENTS)]
            topic, _, action = label.partition("_")
            phrase = _ACTIONS[action].format(t=rng.choice(_TOPICS[topic]))
            text = f"{rng.choice(_OPENERS)}{phrase}{rng.choice(_CLOSERS)} (ticket {i})"
            out.writerow([f"cs-{i:05d}", text[0].upper() + text[1:], label])
    return path


def _message(messages: Sequence[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return str(message.get("content") or "")
    return ""


def reply(messages: list[dict[str, Any]]) -> str:
    """A model-like answer to a classification prompt (deterministic in the prompt)."""
    text = _message(messages)
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    guess = INTENTS[digest[0] % len(INTENTS)]
    other = INTENTS[digest[1] % len(INTENTS)]
    lowered = text.lower()
    for label in INTENTS:  # a fair share of right answers: the topic and action words
        topic, _, action = label.partition("_")
        if topic in lowered and action in lowered:
            guess = label
            break
    kind = digest[2] % 20
    if kind < 12:
        return guess
    if kind < 15:
        return f"The category is {guess}."
    if kind < 17:
        return guess.replace("_", " ").title()
    if kind < 18:
        return f"It could be {guess} or {other}."
    return f"echo: {text}"


def serve(latency: float) -> None:
    """Serve with :func:`reply` until killed; the base URL is printed on stdout.

    Its ``/_fake/stats`` also gives ``first_call`` and ``last_answer``: the
    ``time.monotonic()`` (one clock for every process here) of the first chat request
    of the latest burst (a request after more than 0.5 s with nothing in flight: a job
    plans for seconds before its first call, and the previous run may have ended less than
    3 s earlier) and
    of the last answer sent, so a job's wall time splits into before the first call,
    the calls, and after the last answer.
    """
    import time

    from tests.robustify.fake_openai_server import FakeOpenAIServer, serve_until_killed

    class Timed(FakeOpenAIServer):
        first_call: float | None = None
        last_answer: float | None = None

        async def _completion(self, writer: Any, rec: Any, body: Any) -> bool:
            now = time.monotonic()
            if self.first_call is None or (self._stats.in_flight == 0 and (
                    self.last_answer is None or now - self.last_answer > 0.5)):
                self.first_call = now
            try:
                return await super()._completion(writer, rec, body)
            finally:
                self.last_answer = time.monotonic()

        def stats(self) -> dict[str, Any]:
            return {**super().stats(), "first_call": self.first_call,
                    "last_answer": self.last_answer}

    serve_until_killed(Timed(latency=latency, reply=reply, record=False))

if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="the model-like loopback server")
    parser.add_argument("--latency", type=float, default=0.25)
    serve(parser.parse_args().latency)
