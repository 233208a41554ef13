"""Batched greedy generation for a local GGUF model, with a KV prefix cache.

A llama.cpp context with ``n_seq`` sequences, each with a KV buffer of its own, is
stepped by the process's llama thread (:mod:`robustify.models.llama_thread`, which also
says why all llama.cpp work shares one thread). Requests from concurrent callers wait in
a queue; at every step the engine admits waiting requests into free sequences, evaluates their prompts, and runs one
``llama_decode`` that holds the next token of every answering sequence (continuous
batching, as llama.cpp's server does with ``--parallel``).

Forward passes: with one KV buffer per sequence llama.cpp cuts a ``llama_decode`` into
micro-batches ("forward passes"; each reads all the weights) holding a run of
*consecutive* sequence ids with the *same* token count each
(``llama_batch_allocr::split_equal(..., sequential=true)``). The answering sequences'
tokens go in id order; new prompts are evaluated first in a step, so a sequence whose
prompt is done joins the same step's answer tokens instead of leaving a gap in their ids;
and a new request takes a free sequence next to a busy one when nothing else decides.
So the answer tokens of a step mostly fit one pass.
:func:`forward_passes` replays the rule, so ``stats()`` counts the passes exactly.

Prefix cache: a sequence keeps its tokens in the KV cache after its answer is done. A
new prompt starts from the sequence sharing its longest token prefix: it reuses its own
cells, or that buffer is copied with ``llama_memory_seq_cp`` and cut after the shared
prefix. Only the rest of the prompt is evaluated, so the system prompt and
few-shot turns that many prompts share are evaluated about once. Answering sequences
take the ids ``0..n_seq-1`` (so their answer tokens stay consecutive); ``spare`` more
sequences after them never answer: before an answering sequence is overwritten, the
tokens only it holds (at least ``_KEEP_MIN``) are copied into the spare sequence that
holds the fewest such tokens. 16 sequences alone lost a task's few-shot turns while
another task's requests filled them, and the stretches an item's variants share: on 400
default-job requests, 1.20x the unique-prefix tokens were evaluated; with 8 spare
sequences 1.11x. A request whose shared
prefix is being evaluated for another request admitted in the same step waits one step
and then copies it, rather than evaluating it again.

Exactness: the answers are byte-identical to ``create_chat_completion`` because every
token is computed by the same kernels, over the same cells, as in the one-at-a-time path:

* one KV buffer per sequence, so a sequence sits at cells 0..n as there. In one unified
  buffer its cells sit among other sequences' cells, the attention sums add them in
  another order, and 4 of 48 sample answers changed; attention would also run over
  the cells of every sequence (16 times the work for 16 sequences);
* an answer token is the only token of its sequence in its pass, as there;
* a prompt token is never the only token of its sequence in its pass (except the first
  token of a prompt): llama.cpp computes attention for one query row per sequence with
  other kernels than for several, which changes the logits (by up to 0.37 for a numeric
  sample prompt) and 2 of 45 test answers. So a new prompt's tokens cannot share a pass
  with answer tokens (``test_a_prompt_token_alone_in_its_pass_changes_logits``); new
  prompts share a call only when no sequence gets a one-token piece. Several sequences
  with several tokens each in one pass are exact.

Failures stay with their request: a prompt longer than the context window fails alone;
an error in a step fails the requests in it, and the engine carries on. If the engine
stops (closed, or an error the step cannot handle), every waiting request gets the
error; nothing waits forever.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import logging
import time
from collections import deque
from typing import Any, Callable

from robustify.models import llama_thread
from robustify.models.llama_thread import CONDITION
from robustify.models.local_chat import AnswerText, Prepared, prepare
from robustify.models.local_threads import calibrate

__all__ = ["BatchEngine", "unique_prefix_tokens", "common_prefix", "forward_passes"]

logger = logging.getLogger(__name__)

_N_BATCH = 512
"""Tokens per ``llama_decode`` call (prompt tokens beyond it continue next step)."""

_KEEP_MIN = 8
"""Cached tokens only one sequence holds that are worth keeping in a spare sequence."""

_ENGINES: "set[BatchEngine]" = set()


def common_prefix(a: list[int], b: list[int]) -> int:
    """Number of leading tokens ``a`` and ``b`` share (binary search on slice equality)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def unique_prefix_tokens(prompts: list[list[int]]) -> int:
    """Tokens in the prefix tree of ``prompts``: what must be evaluated at the least."""
    total, previous = 0, []  # type: int, list[int]
    for tokens in sorted(prompts):
        total += len(tokens) - common_prefix(previous, tokens)
        previous = tokens
    return total


def forward_passes(counts: list[tuple[int, int]], n_ubatch: int = _N_BATCH) -> list[int]:
    """Tokens of each forward pass llama.cpp makes of one ``llama_decode``.

    ``counts`` lists ``(sequence id, tokens)`` in batch order, one sequence id per token
    and a sequence's tokens together, as :class:`BatchEngine` builds its batches. It
    replays ``split_equal`` with ``sequential=true`` (KV buffer per sequence, llama.cpp
    0.3.x): a pass takes the first sequence with tokens left and the following ones
    while their ids go up by one, then the same number of tokens from each of them, as
    many as the shortest has left (at most ``n_ubatch`` in all).
    """
    return [rows * len(seqs) for seqs, rows in _split(counts, n_ubatch)]


def _split(counts: list[tuple[int, int]], n_ubatch: int) -> list[tuple[list[int], int]]:
    """The passes of :func:`forward_passes` as (sequence ids, tokens of each)."""
    left = [[seq, n] for seq, n in counts if n > 0]
    passes: list[tuple[list[int], int]] = []
    while left:
        run = [left[0]]
        for entry in left[1:]:
            if entry[0] == run[-1][0] + 1:
                run.append(entry)
        rows = max(1, min(min(entry[1] for entry in run), n_ubatch // len(run)))
        for entry in run:
            entry[1] -= rows
        passes.append(([entry[0] for entry in run], rows))
        left = [entry for entry in left if entry[1] > 0]
    return passes


class _Request:
    """A queued call: messages in, a future out."""

    __slots__ = ("messages", "kwargs", "future", "prepared")

    def __init__(self, messages: list[dict[str, str]], kwargs: dict[str, Any]) -> None:
        self.messages, self.kwargs = messages, kwargs
        self.future: concurrent.futures.Future = concurrent.futures.Future()
        self.prepared: Prepared | None = None


class _Slot:
    """One sequence of the KV cache."""

    __slots__ = ("seq", "kv", "pending", "request", "answer", "used")

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.kv: list[int] = []  # tokens in the cache, positions 0..len-1
        self.pending: list[int] = []  # tokens to evaluate next
        self.request: _Request | None = None
        self.answer: AnswerText | None = None
        self.used = 0.0  # when it last took a request (least recently used is evicted)


class BatchEngine:
    """Batched greedy generation over one llama.cpp context (see the module docstring).

    Args:
        llm: The loaded ``llama_cpp.Llama`` (model weights, tokenizer, chat template).
        n_seq: Sequences decoded together.
        n_ctx: Context window of one sequence (prompt + answer).
        n_threads: llama.cpp threads; None measures the fastest count up to ``cores``
            (:func:`robustify.models.local_threads.calibrate`, cached per ``key``).
        seq_cells: KV cells of one sequence's buffer; longer requests take ``fallback``.
        fallback: Called with ``(messages, kwargs)`` for a request that is not plain
            greedy decoding or too long for ``seq_cells``; it runs the one-at-a-time path and returns
            ``(text, usage, finish_reason)``.
        spare: Extra sequences that never answer and only keep cached prefixes (ids
            after the ``n_seq`` answering ones; see "Prefix cache").
    """

    def __init__(self, llm: Any, *, n_seq: int, n_ctx: int,
                 n_threads: int | None, seq_cells: int,
                 fallback: Callable[[list[dict[str, str]]], Any], cores: int = 1,
                 key: str = "", spare: int = 0) -> None:
        import llama_cpp

        self._low = low = llama_cpp.llama_cpp
        self._np = __import__("numpy")
        self.llm, self.n_seq, self.n_ctx = llm, n_seq, n_ctx
        self._fallback = fallback
        params = low.llama_context_default_params()
        self.seq_cells = min(seq_cells, n_ctx)
        params.n_ctx = self.seq_cells * (n_seq + spare)
        params.n_batch = params.n_ubatch = _N_BATCH
        params.n_seq_max = n_seq + spare
        params.n_threads = params.n_threads_batch = n_threads or cores
        params.kv_unified = False
        params.no_perf = True
        params.flash_attn_type = llm.context_params.flash_attn_type
        self.ctx = low.llama_init_from_model(llm.model, params)
        if not self.ctx:
            raise RuntimeError("llama.cpp could not create a batched context")
        self._mem = low.llama_get_memory(self.ctx)
        self._batch = low.llama_batch_init(_N_BATCH, 0, 1)
        self._n_vocab = llm.n_vocab()
        self.n_threads = n_threads or cores
        if n_threads is None:
            llama_thread.call(calibrate, self, key, cores)
        self._slots = [_Slot(i) for i in range(n_seq + spare)]
        self._queue: deque[_Request] = deque()
        self._waiting: list[_Request] = []
        self._closed = False
        self._counts = {"requests": 0, "prompt_tokens": 0, "evaluated_prompt_tokens": 0,
                        "answer_tokens": 0, "decode_calls": 0, "forward_passes": 0,
                        "fallback_requests": 0, "kept_prefixes": 0}
        _ENGINES.add(self)
        llama_thread.attach(self)

    # ----------------------------------------------------------------- callers' side
    def submit(self, messages: list[dict[str, str]],
               kwargs: dict[str, Any]) -> concurrent.futures.Future:
        """Queue one chat with ``create_chat_completion`` keyword arguments.

        The future gives ``(text, usage dict, finish_reason)`` or the request's error.
        """
        request = _Request(messages, kwargs)
        with CONDITION:
            if self._closed:
                request.future.set_exception(RuntimeError("the local model was closed"))
                return request.future
            self._queue.append(request)
            CONDITION.notify()
        return request.future

    def stats(self) -> dict[str, int]:
        """Counts so far: requests, prompt tokens (all, and evaluated after the prefix cache),
        answer tokens fed back, ``llama_decode`` calls and the forward passes they made."""
        with CONDITION:
            return dict(self._counts)

    def reset_stats(self) -> None:
        """Zero the counts (the prefix cache is kept)."""
        with CONDITION:
            for key in self._counts:
                self._counts[key] = 0

    def forget(self) -> bool:
        """Empty the prefix cache if idle (for benchmarks starting cold); True if done."""
        return llama_thread.call(self._forget)

    def _forget(self) -> bool:
        if self._queue or self._waiting or self._busy() or not self.ctx:
            return False
        self._low.llama_memory_clear(self._mem, True)
        for slot in self._slots:
            slot.kv = []
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Stop the engine (waiting requests fail) and free the context."""
        with CONDITION:
            self._closed = True
        llama_thread.detach(self)
        error = RuntimeError("the local model was closed")
        if llama_thread.on_llama_thread():
            self._shutdown(error)
        else:
            try:
                llama_thread.submit(self._shutdown, error).result(timeout)
            except concurrent.futures.TimeoutError:
                logger.warning("the local model did not close within %.0f s", timeout)
        _ENGINES.discard(self)

    # ---------------------------------------------------- llama thread's side (Engine)
    def has_work(self) -> bool:
        """Requests queued, waiting for a sequence or being answered (CONDITION held)."""
        return bool(self._queue or self._waiting) or self._busy()

    def step(self) -> None:
        """Take the queued requests, then one step: admit, evaluate prompts, decode."""
        with CONDITION:
            incoming = list(self._queue)
            self._queue.clear()
        for request in incoming:
            self._prepare(request)
        try:
            self._step()
        except Exception as exc:  # fail this step's requests, keep serving
            logger.exception("batched local generation step failed")
            self._fail_active(exc)

    def abort(self, error: BaseException) -> None:
        """Stop for good after an error the step could not handle."""
        with CONDITION:
            self._closed = True
        self._shutdown(error)

    def _shutdown(self, error: BaseException) -> None:
        """Fail every request still here and free the context (on the llama thread)."""
        with CONDITION:
            left = list(self._queue) + self._waiting
            self._queue.clear()
            self._waiting = []
        for request in left:
            _fail(request, error)
        self._fail_active(error)
        if self.ctx:
            self._low.llama_batch_free(self._batch)
            self._low.llama_free(self.ctx)
            self.ctx = None

    def _busy(self) -> bool:
        return any(slot.request is not None for slot in self._slots)

    def _prepare(self, request: _Request) -> None:
        if request.future.cancelled():
            return
        try:
            prepared = prepare(self.llm, request.messages, request.kwargs)
            if len(prepared.tokens) >= self.n_ctx:
                raise ValueError(f"Requested tokens ({len(prepared.tokens)}) exceed "
                                 f"context window of {self.n_ctx}")
            budget = prepared.max_tokens
            if budget is None or budget <= 0 or budget + len(prepared.tokens) >= self.n_ctx:
                budget = self.n_ctx - len(prepared.tokens)
            # + 4: an answer may run a few tokens past its budget to finish a UTF-8 character
            if not prepared.greedy or len(prepared.tokens) + budget + 4 > self.seq_cells:
                self._counts["fallback_requests"] += 1
                _resolve(request, self._fallback(request.messages, request.kwargs))
                return
        except Exception as exc:
            _fail(request, exc)
            return
        request.prepared = prepared
        self._waiting.append(request)

    def _admit(self) -> None:
        """Move waiting requests into free sequences, reusing cached prefixes."""
        admitted: list[list[int]] = []
        active = sum(1 for s in self._slots if s.request is not None)
        for request in list(self._waiting):
            if active >= self.n_seq:
                break
            if request.future.cancelled():
                self._waiting.remove(request)
                continue
            free = [s for s in self._slots[:self.n_seq] if s.request is None]
            if not free:
                break
            tokens = request.prepared.tokens
            cached = {s.seq: common_prefix(s.kv, tokens) for s in self._slots}
            source, shared = max(((s, cached[s.seq]) for s in self._slots),
                                 key=lambda pair: pair[1])
            if any(common_prefix(other, tokens) > shared for other in admitted):
                continue  # its prefix is being evaluated now: copy it next step
            own, own_shared = max(((s, cached[s.seq]) for s in free),
                                  key=lambda pair: (pair[1], -pair[0].used))
            worth = self._worths()
            target = own if own_shared == shared else min(
                free, key=lambda s: (worth[s.seq], not self._beside_busy(s), s.used))
            answer = AnswerText(self.llm, tokens, request.prepared.stop,
                                request.prepared.max_tokens, self.n_ctx)
            shared = min(shared, len(tokens) - 1)  # the last token gives the logits
            self._keep(target, source, worth)  # what it holds beyond the shared prefix would go
            self._low.llama_memory_seq_rm(self._mem, target.seq,
                                          shared if target is source else -1, -1)
            if target is not source and shared > 0:  # copy the whole buffer, then cut
                self._low.llama_memory_seq_cp(self._mem, source.seq, target.seq, -1, -1)
                self._low.llama_memory_seq_rm(self._mem, target.seq, shared, -1)
            logger.debug("sequence %d: %d of %d prompt tokens cached", target.seq, shared,
                         len(tokens))
            target.kv = tokens[:shared]
            target.pending = tokens[shared:]
            target.request, target.answer, target.used = request, answer, time.monotonic()
            self._waiting.remove(request)
            admitted.append(tokens)
            active += 1
            self._counts["requests"] += 1
            self._counts["prompt_tokens"] += len(tokens)

    def _keep(self, slot: _Slot, source: _Slot, worth: dict[int, int]) -> None:
        """Before ``slot`` is overwritten, copy its cached tokens into a spare sequence
        if no other sequence holds most of them (the spare that holds least goes; never
        ``source``, which the new prompt is about to copy its prefix from). ``worth``:
        :meth:`_worths` of the sequences as they are now."""
        spares = [s for s in self._slots[self.n_seq:] if s is not source]
        if not spares or len(slot.kv) < _KEEP_MIN:
            return
        if worth[slot.seq] < _KEEP_MIN:
            return
        victim = min(spares, key=lambda s: (worth[s.seq], s.used))
        if worth[victim.seq] >= worth[slot.seq]:
            return
        self._low.llama_memory_seq_rm(self._mem, victim.seq, -1, -1)
        self._low.llama_memory_seq_cp(self._mem, slot.seq, victim.seq, -1, -1)
        victim.kv, victim.used = list(slot.kv), slot.used
        self._counts["kept_prefixes"] += 1

    def _beside_busy(self, slot: _Slot) -> bool:
        """True if a neighbouring sequence id is busy (keeps the busy ids consecutive)."""
        return any(other.request is not None for other in self._slots
                   if abs(other.seq - slot.seq) == 1)

    def _worths(self) -> dict[int, int]:
        """Per sequence id, the cached tokens only that sequence holds: what overwriting
        it would lose. The longest prefix a token list shares with any other is shared
        with a neighbour in sorted order, so 2n prefix comparisons instead of n²."""
        ranked = sorted(self._slots, key=lambda s: s.kv)
        shared = [common_prefix(a.kv, b.kv) for a, b in zip(ranked, ranked[1:])]
        worth = {}
        for i, slot in enumerate(ranked):
            best = max(shared[i - 1] if i > 0 else 0, shared[i] if i < len(shared) else 0)
            worth[slot.seq] = len(slot.kv) - best
        return worth

    def _step(self) -> None:
        for slot in self._slots:  # cancelled callers (interrupt) free their sequence
            if slot.request is not None and slot.request.future.cancelled():
                slot.request = slot.answer = None
                slot.pending = []
        self._admit()
        prompts = [s for s in self._slots if s.request is not None and len(s.pending) > 1]
        # New prompts first, so a sequence whose prompt is done joins this step's answer
        # tokens and leaves no gap in their ids. Then one call decodes the next token of
        # every answering sequence.
        for group in self._prompt_calls(prompts) + [None]:
            if group is None:
                group = [s for s in self._slots if s.request is not None
                         and len(s.pending) == 1]
            if not group:
                continue
            try:
                self._decode(group)
            except Exception as exc:  # this call's requests fail; the others carry on
                logger.warning("llama_decode failed for %d sequence(s): %s", len(group), exc)
                for slot in group:
                    _fail(slot.request, exc)
                    slot.request = slot.answer = None
                    slot.pending, slot.kv = [], []
                    self._low.llama_memory_seq_rm(self._mem, slot.seq, -1, -1)

    @staticmethod
    def _prompt_calls(prompts: list[_Slot]) -> list[list[_Slot]]:
        """All new prompts in one call if llama.cpp then gives every sequence at least two
        tokens in each pass (see "Exactness"; new prompts on consecutive ids with equal
        lengths share a pass); otherwise one call per prompt."""
        counts = [(s.seq, len(s.pending)) for s in prompts]
        if len(prompts) > 1 and sum(n for _, n in counts) <= _N_BATCH and \
                all(rows > 1 for _, rows in _split(counts, _N_BATCH)):
            return [prompts]
        return [[s] for s in prompts]

    def _decode(self, group: list[_Slot]) -> None:
        """One ``llama_decode`` over ``group``; sample the sequences whose prompt is done."""
        batch, low = self._batch, self._low
        outputs: list[tuple[_Slot, int]] = []
        fed: list[tuple[_Slot, int]] = []
        n = 0
        for slot in group:
            take = min(len(slot.pending), _N_BATCH - n)
            for j in range(take):
                batch.token[n] = slot.pending[j]
                batch.pos[n] = len(slot.kv) + j
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = slot.seq
                batch.logits[n] = take == len(slot.pending) and j == take - 1
                n += 1
            if take == len(slot.pending):
                outputs.append((slot, n - 1))
            fed.append((slot, take))
        batch.n_tokens = n
        rc = low.llama_decode(self.ctx, batch)
        self._counts["decode_calls"] += 1
        self._counts["forward_passes"] += len(forward_passes(
            [(slot.seq, take) for slot, take in fed]))
        if rc != 0:
            raise RuntimeError(f"llama_decode failed (code {rc})")
        for slot, take in fed:
            key = "evaluated_prompt_tokens" if len(slot.kv) < len(slot.answer.prompt) \
                else "answer_tokens"
            self._counts[key] += take
            slot.kv.extend(slot.pending[:take])
            slot.pending = slot.pending[take:]
        np = self._np
        for slot, index in outputs:
            logits = np.ctypeslib.as_array(low.llama_get_logits_ith(self.ctx, index),
                                           shape=(self._n_vocab,))
            token = int(np.argmax(logits))
            if slot.answer.feed(token):
                answer, request = slot.answer, slot.request
                slot.request = slot.answer = None
                usage = {"prompt_tokens": len(answer.prompt),
                         "completion_tokens": len(answer.tokens)}
                _resolve(request, (answer.content(), usage, answer.finish_reason))
            else:
                slot.pending = [token]

    def _fail_active(self, error: BaseException) -> None:
        for slot in self._slots:
            if slot.request is not None:
                _fail(slot.request, error)
            slot.request = slot.answer = None
            slot.pending, slot.kv = [], []
        if self.ctx:
            self._low.llama_memory_clear(self._mem, True)


def _resolve(request: _Request, value: Any) -> None:
    with contextlib.suppress(concurrent.futures.InvalidStateError):  # cancelled meanwhile
        request.future.set_result(value)


def _fail(request: _Request, error: BaseException) -> None:
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        request.future.set_exception(error)


@atexit.register
def _close_all() -> None:  # pragma: no cover - interpreter exit
    for engine in list(_ENGINES):
        engine.close(timeout=5.0)
