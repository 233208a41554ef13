"""Answering through the OpenAI Batch API: plan, write, upload, submit, poll, store.

:func:`run_batches` fills the response cache for the ``openai:`` backends of a run
before the normal runner starts; the runner then finds every answer in the cache and
scores as usual. Steps:

1. **Plan**: the variants are read once and every prompt is keyed exactly as the
   runner keys it (:class:`~robustify.runner.cache.KeyMaker` over the same
   ``build_messages``). Prompts already cached, or already in a batch that is still
   pending (from a run that was stopped), are left out; identical prompts go once.
2. **Write**: request lines (:mod:`.batch_jsonl`) go to input files cut at
   ``max_requests`` and ``max_bytes`` (50,000 and 200 MB, the API's limits), one model
   per file (:mod:`.batch_state`).
3. **Submit**: each file is uploaded (``purpose=batch``) and a batch created
   (``completion_window`` 24h); every id is saved before the next step.
4. **Poll** with a growing wait (``poll_first``, then half as long again each time, up
   to ``poll_max``), one progress line per change. A finished batch's output file is
   read back and each answer stored in the cache; its error file gives per-request
   failures, which the runner then records on their rows (:class:`BatchAnswered`).
   An expired (or cancelled) batch keeps what it completed; the rest of an expired one
   is submitted once more, and what expires again is recorded as failed.

Keys: clients read the key from the variable named by the model (as normal calls do);
no key is written to any file, and error text is scrubbed of it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from perturbations.errors import ConfigError
from perturbations.records import Item, Variant

from robustify.models.answer_cap import answer_limit, cap_answer
from robustify.models.base import BaseBackend, ModelCallError, is_loopback_url, one_line
from robustify.records import Completion
from robustify.runner.batch_jsonl import BatchOptions, is_batchable, read_answer, request_line
from robustify.runner.batch_state import DONE, BatchState, ChunkWriter
from robustify.runner.cache import KeyMaker, ResponseCache, cache_key, canonical_json
from robustify.runner.plan import LOOKUP_CHUNK

__all__ = ["run_batches", "BatchOutcome", "BatchAnswered", "NO_BATCH_ANSWER"]

logger = logging.getLogger(__name__)

NO_BATCH_ANSWER = ("no answer from the Batch API for this prompt (not submitted or not "
                   "stored); a re-run submits it again")
_TERMINAL = ("completed", "failed", "expired", "cancelled")
_PLACEHOLDER_KEY = "not-needed"

Report = Callable[[str], None]


@dataclass
class BatchOutcome:
    """What the batch pass did: failures per model label and facts for the manifest."""

    failures: dict[str, dict[str, str]] = field(default_factory=dict)
    """Model label -> cache key -> error line of each request that failed."""
    requests: int = 0
    """Requests written to new input files in this run (resubmissions included)."""
    answers: int = 0
    """Answers read back and stored in the cache."""
    batches: list[dict[str, Any]] = field(default_factory=list)
    """Per batch: id, model label, requests, status, attempt (no key)."""

    def facts(self) -> dict[str, Any]:
        """The manifest's ``batch`` entry."""
        failed = sum(len(v) for v in self.failures.values())
        return {"requests": self.requests, "answers": self.answers, "failed": failed,
                "batches": self.batches}


class BatchAnswered(BaseBackend):
    """A backend whose prompts were all sent through the Batch API.

    Same label, kind, parameters and cache identity as ``inner``; the runner only calls
    it for prompts the cache lacks, that is those whose batch request failed, and each
    such call raises that failure so it is recorded on its rows like a failed call.
    """

    def __init__(self, inner: Any, failures: dict[str, str]) -> None:
        self.inner = inner
        self.label = inner.label
        self.kind = inner.kind
        self.params = inner.params
        self.max_concurrency = inner.max_concurrency
        self.failures = failures
        self._identity = inner.identity()

    def __getattr__(self, name: str) -> Any:
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def identity(self) -> dict[str, Any]:
        """The inner backend's identity (the cache keys are those of normal calls)."""
        return dict(self._identity)

    async def agenerate(self, messages: list[dict[str, str]]) -> Completion:
        """Raise the recorded failure of this prompt (never calls the model)."""
        key = cache_key(self._identity, messages)
        raise ModelCallError(self.failures.get(key, NO_BATCH_ANSWER))

    async def aclose(self) -> None:
        aclose = getattr(self.inner, "aclose", None)
        if aclose is not None:
            await aclose()

    def close(self) -> None:
        self.inner.close()


def run_batches(variants: Iterable[Variant], backends: Sequence[Any], *,
                build_messages: Callable[[Item], list[dict[str, str]]],
                cache: ResponseCache, folder: str | os.PathLike[str],
                options: BatchOptions | None = None, report: Report | None = None,
                sleep: Callable[[float], None] = time.sleep) -> BatchOutcome:
    """Answer the uncached prompts of the batchable backends through the Batch API.

    Args:
        variants: The run's variants (read once, as the runner reads them).
        backends: The run's backends; only ``openai:`` ones are batched.
        build_messages: The runner's ``build_messages`` (same prompts, same keys).
        cache: The response cache the answers go to.
        folder: Where input files and ``state.json`` live (resumable).
        options: Limits and polling (:class:`BatchOptions`).
        report: Called with each progress line (default: the log).

    Returns:
        A :class:`BatchOutcome`; wrap the backends with :class:`BatchAnswered` using
        its failures before running the queries.

    Raises:
        ConfigError: No cache, or a prompt the Batch API cannot answer.
        ModelCallError: The Files or Batches API kept failing (the state is saved: a
            re-run resumes without submitting anything twice).
    """
    if cache is None:
        raise ConfigError("--batch needs the response cache (the answers are read back "
                          "into it); do not pass --cache off")
    options = options or BatchOptions()
    say = report or logger.info
    state = BatchState(folder)
    if state.pending():
        say(f"resuming {len(state.pending())} batch(es) kept in {state.folder} (nothing is "
            f"submitted twice)")
    run = _BatchRun(state, cache, options, say, sleep)
    batchable = [b for b in backends if is_batchable(b)]
    for backend in batchable:
        run.failures.setdefault(backend.label, {})
    run.plan(variants, batchable, build_messages)
    run.submit_and_poll()
    run.outcome.failures = run.failures
    return run.outcome


class _BatchRun:
    """State of one :func:`run_batches` call."""

    def __init__(self, state: BatchState, cache: ResponseCache, options: BatchOptions,
                 say: Report, sleep: Callable[[float], None]) -> None:
        self.state = state
        self.cache = cache
        self.options = options
        self.say = say
        self.sleep = sleep
        self.failures: dict[str, dict[str, str]] = {}
        self.outcome = BatchOutcome()
        self.backends: dict[str, Any] = {}
        self.clients: dict[tuple[str, str], Any] = {}
        self.shown: dict[str, str] = {}

    # --------------------------------------------------------------- planning
    def plan(self, variants: Iterable[Variant], backends: list[Any],
             build_messages: Callable[[Item], list[dict[str, str]]]) -> None:
        for backend in backends:
            self.backends[backend.label] = backend
        if not backends:
            for _ in variants:  # the stream is still read (and its variants file written)
                pass
            return
        # raw 32-byte keys: half the memory of hex strings at millions of prompts
        pending = {bytes.fromhex(key) for key in self.state.pending_ids()}
        makers = [KeyMaker(b.identity()) for b in backends]
        writers = [ChunkWriter(self.state, b, self.options.max_requests, self.options.max_bytes)
                   for b in backends]
        seen: set[bytes] = set()
        buffer: list[tuple[int, str, list[dict[str, str]]]] = []
        for variant in variants:
            messages = build_messages(variant.item)
            messages_json = canonical_json(messages)
            for b, maker in enumerate(makers):
                key = maker.digest(messages_json)
                if key in seen or key in pending:
                    continue
                seen.add(key)
                buffer.append((b, key.hex(), messages))
            if len(buffer) >= LOOKUP_CHUNK:
                self._write(buffer, backends, writers)
                buffer = []
        self._write(buffer, backends, writers)
        for writer in writers:
            writer.close()
        for backend, writer in zip(backends, writers):
            if writer.written:
                count = sum(c["requests"] for c in writer.written)
                self.say(f"{backend.label}: {count} requests in {len(writer.written)} "
                         f"batch(es) for the Batch API (answers within "
                         f"{self.options.completion_window}; about half the price of "
                         f"normal calls)")

    def _write(self, buffer: list[tuple[int, str, list[dict[str, str]]]],
               backends: list[Any], writers: list[ChunkWriter]) -> None:
        if not buffer:
            return
        hits = self.cache.get_many([key for _, key, _ in buffer])
        for b, key, messages in buffer:
            if key in hits:
                continue
            backend = backends[b]
            line = request_line(backend, key, messages)
            if not writers[b].fits(line):
                self.failures[backend.label][key] = (
                    f"request of {len(line)} bytes is larger than batch.max_bytes "
                    f"({self.options.max_bytes}); not submitted")
                continue
            writers[b].add(line)
            self.outcome.requests += 1

    # ------------------------------------------------------------- submitting
    def _client(self, chunk: dict[str, Any]) -> Any:
        import openai

        where = (chunk["base_url"], chunk["api_key_env"])
        client = self.clients.get(where)
        if client is None:
            key = os.environ.get(chunk["api_key_env"])
            if not key:
                if not is_loopback_url(chunk["base_url"]):
                    raise ConfigError(f"{chunk['label']}: environment variable "
                                      f"{chunk['api_key_env']} is not set; it must hold the "
                                      f"API key for {chunk['base_url']}")
                key = _PLACEHOLDER_KEY
            client = self.clients[where] = openai.OpenAI(
                base_url=chunk["base_url"], api_key=key, max_retries=5, timeout=600.0)
        return client

    def _api(self, chunk: dict[str, Any], what: str, call: Callable[[], Any]) -> Any:
        """One Files/Batches call; an error becomes one line without the key."""
        import openai

        try:
            return call()
        except openai.OpenAIError as exc:
            secret = os.environ.get(chunk["api_key_env"])
            raise ModelCallError(one_line(f"{chunk['label']}: Batch API: {what} failed: {exc}; "
                                          f"the batch state in {self.state.folder} is kept, "
                                          f"run again to resume", secrets=(secret,))) from None

    def _submit(self, chunk: dict[str, Any]) -> None:
        client = self._client(chunk)
        if not chunk.get("input_file_id"):
            with open(self.state.folder / chunk["file"], "rb") as data:
                uploaded = self._api(chunk, "upload", lambda: client.files.create(
                    file=(chunk["file"], data, "application/jsonl"), purpose="batch"))
            chunk["input_file_id"] = uploaded.id
            self.state.save()
        if chunk.get("batch_id"):
            return
        if chunk.get("creating"):
            # created before a stop, perhaps, without its id saved: find it, never repeat it
            found = self._find(client, chunk)
            if found is not None:
                chunk["batch_id"] = found
                chunk.pop("creating", None)
                self.state.save()
                return
        chunk["creating"] = True
        self.state.save()
        batch = self._api(chunk, "creating a batch", lambda: client.batches.create(
            input_file_id=chunk["input_file_id"], endpoint="/v1/chat/completions",
            completion_window=self.options.completion_window,
            metadata={"robustify_chunk": chunk["id"]}))
        chunk["batch_id"] = batch.id
        chunk["status"] = batch.status
        chunk.pop("creating", None)
        self.state.save()
        self.say(f"batch {batch.id} ({chunk['label']}): submitted {chunk['requests']} requests"
                 + (f" (resubmitted after expiry, attempt {chunk['attempt']})"
                    if chunk.get("attempt", 1) > 1 else ""))

    def _find(self, client: Any, chunk: dict[str, Any]) -> str | None:
        page = self._api(chunk, "listing batches", lambda: client.batches.list(limit=100))
        for batch in page:
            metadata = getattr(batch, "metadata", None) or {}
            if (metadata.get("robustify_chunk") == chunk["id"]
                    or getattr(batch, "input_file_id", None) == chunk["input_file_id"]):
                return str(batch.id)
        return None

    # ---------------------------------------------------------------- polling
    def submit_and_poll(self) -> None:
        wait = self.options.poll_first
        while True:
            pending = self.state.pending()
            if not pending:
                return
            for chunk in pending:
                if not chunk.get("batch_id"):
                    self._submit(chunk)
            self.sleep(wait)
            wait = min(self.options.poll_max, wait * 1.5)
            for chunk in self.state.pending():
                if chunk.get("batch_id"):
                    self._check(chunk)

    def _check(self, chunk: dict[str, Any]) -> None:
        client = self._client(chunk)
        batch = self._api(chunk, "checking a batch",
                          lambda: client.batches.retrieve(chunk["batch_id"]))
        counts = getattr(batch, "request_counts", None)
        done = getattr(counts, "completed", 0) or 0
        failed = getattr(counts, "failed", 0) or 0
        total = getattr(counts, "total", 0) or chunk["requests"]
        line = (f"batch {batch.id} ({chunk['label']}): {batch.status}, {done}/{total} done, "
                f"{failed} failed")
        if self.shown.get(chunk["id"]) != line:
            self.shown[chunk["id"]] = line
            self.say(line)
        if batch.status not in _TERMINAL:
            if chunk.get("status") != batch.status:
                chunk["status"] = batch.status
                self.state.save()
            return
        self._read_back(chunk, batch, client)

    def _read_back(self, chunk: dict[str, Any], batch: Any, client: Any) -> None:
        backend = self.backends.get(chunk["label"])
        if backend is None:
            logger.warning("batch %s answers for %s, which is not in this run; its answers "
                           "are stored all the same", batch.id, chunk["label"])
        failures = self.failures.setdefault(chunk["label"], {})
        answered: set[str] = set()
        failed: dict[str, str] = {}
        parser = backend if backend is not None else _Parser(chunk)
        cap = answer_limit(parser)
        asked = {cid for cid, _ in self.state.lines(chunk)}  # only these may enter the cache
        for file_id in (getattr(batch, "output_file_id", None),
                        getattr(batch, "error_file_id", None)):
            if not file_id:
                continue
            for raw in self._result_lines(chunk, client, file_id):
                if not raw.strip():
                    continue
                try:
                    custom_id, completion, error = read_answer(parser, json.loads(raw))
                except (ValueError, TypeError, AttributeError):  # its rows get NO_BATCH_ANSWER
                    logger.warning("batch %s: an unreadable result line was skipped", batch.id)
                    continue
                if custom_id not in asked:
                    continue
                if completion is not None:
                    self.cache.put(custom_id, cap_answer(completion, cap))
                    answered.add(custom_id)
                    self.outcome.answers += 1
                elif error is not None:
                    failed[custom_id] = error
        self.cache.flush()
        left = [(cid, line) for cid, line in self.state.lines(chunk) if cid not in answered]
        status = batch.status
        if status == "expired":
            self._expired(chunk, left, failures)
        else:
            errors = getattr(getattr(batch, "errors", None), "data", None) or []
            whole = "; ".join(one_line(getattr(e, "message", e)) for e in errors[:3])
            for cid, _ in left:
                if cid in failed:
                    failures[cid] = failed[cid]
                elif status == "failed":
                    failures[cid] = one_line(f"batch {batch.id} failed: {whole or 'no reason'}")
                elif status == "cancelled":
                    failures[cid] = f"batch {batch.id} was cancelled before this request ran"
                else:
                    failures[cid] = NO_BATCH_ANSWER
        chunk["status"] = DONE
        chunk["final_status"] = status
        chunk["answered"] = len(answered)
        self.state.save()
        # the requests are read back (and any resubmission written): the file is spent
        (self.state.folder / chunk["file"]).unlink(missing_ok=True)
        self.outcome.batches.append({"batch_id": batch.id, "model": chunk["label"],
                                     "requests": chunk["requests"], "status": status,
                                     "answered": len(answered), "attempt": chunk["attempt"]})

    def _result_lines(self, chunk: dict[str, Any], client: Any, file_id: str) -> Iterable[str]:
        """The lines of a result file, streamed (a file of gigabytes is never held whole)."""
        import openai

        try:
            with client.files.with_streaming_response.content(file_id) as response:
                yield from response.iter_lines()
        except openai.OpenAIError as exc:
            secret = os.environ.get(chunk["api_key_env"])
            raise ModelCallError(one_line(f"{chunk['label']}: Batch API: reading results "
                                          f"failed: {exc}; the batch state in "
                                          f"{self.state.folder} is kept, run again to resume",
                                          secrets=(secret,))) from None

    def _expired(self, chunk: dict[str, Any], left: list[tuple[str, bytes]],
                 failures: dict[str, str]) -> None:
        if not left:
            return
        if chunk.get("attempt", 1) >= 2:
            for cid, _ in left:
                failures[cid] = (f"batch expired twice: not answered within the completion "
                                 f"window ({self.options.completion_window})")
            return
        if any(c.get("retry_of") == chunk["id"] for c in self.state.chunks):
            return  # resubmitted already, before a stop
        backend = self.backends.get(chunk["label"]) or _Parser(chunk)
        writer = ChunkWriter(self.state, backend, self.options.max_requests,
                             self.options.max_bytes, attempt=2, retry_of=chunk["id"])
        for _, line in left:
            writer.add(line)
        writer.close()
        self.outcome.requests += len(left)
        self.say(f"batch {chunk.get('batch_id')} ({chunk['label']}): expired with {len(left)} "
                 f"requests unanswered; submitting them once more")


class _Parser:
    """Reads answers for a chunk of a model not in this run (a stopped run's other model)."""

    def __init__(self, chunk: dict[str, Any]) -> None:
        self.label = chunk["label"]
        self.model = chunk["model"]
        self.base_url = chunk["base_url"]
        self.api_key_env = chunk["api_key_env"]

    def _secrets(self) -> tuple[str | None, ...]:
        return (os.environ.get(self.api_key_env),)

    def _completion(self, response: Any) -> Completion:
        from robustify._secrets import scrub

        choice = response.choices[0]
        usage = getattr(response, "usage", None)
        return Completion(text=scrub(choice.message.content or "", self._secrets()),
                          tokens_in=getattr(usage, "prompt_tokens", None),
                          tokens_out=getattr(usage, "completion_tokens", None),
                          finish_reason=getattr(choice, "finish_reason", None))
