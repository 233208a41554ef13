"""Batched local generation (robustify.models.local_batch) on the real embedded SmolLM2.

The batched answers must be byte-identical to ``create_chat_completion`` one prompt at a
time; shared prefixes must be evaluated about once; failures stay with their request.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from pathlib import Path
from typing import Any

import pytest

from robustify.models.base import ModelCallError

pytestmark = pytest.mark.usefixtures("local_model_path")


def _prompts() -> list[list[dict[str, str]]]:
    """25 clean sample prompts, 5 of each task kind, and 20 variants of them (typos,
    slang, truncation...)."""
    from perturbations.engine import perturb
    from robustify.data import load_items
    from robustify.prompts import build_messages

    sample = load_items("sample")
    items = [item for kind in sorted({i.task for i in sample})
             for item in [i for i in sample if i.task == kind][:5]]
    prompts = [build_messages(item) for item in items]
    for i, spec in enumerate(["typos@high", "slang@high", "truncation@high",
                              "mobile_typing@low"] * 5):
        variant = perturb(items[i], spec, seed=0)
        prompts.append(build_messages(variant.item))
    return prompts


def _gather(backend: Any, prompts: list[list[dict[str, str]]]) -> list[Any]:
    async def main() -> list[Any]:
        limit = asyncio.Semaphore(backend.max_concurrency)

        async def one(prompt: list[dict[str, str]]) -> Any:
            async with limit:
                try:
                    return await backend.agenerate(prompt)
                except ModelCallError as exc:
                    return exc
        return await asyncio.gather(*(one(p) for p in prompts))
    return asyncio.run(main())


@pytest.fixture(scope="module")
def runs() -> dict[str, Any]:
    from robustify.models.local import LocalBackend

    prompts = _prompts()
    batched = LocalBackend("smollm2", n_threads=1)
    before = batched.stats()
    answers = _gather(batched, prompts)
    after = batched.stats()
    exact = LocalBackend("smollm2", n_threads=1, batch=1)
    singles = [exact.generate(p) for p in prompts]
    return {"prompts": prompts, "batched": answers, "single": singles, "backend": batched,
            "counts": {k: after[k] - before[k] for k in after}}


def test_batched_answers_are_byte_identical_to_one_at_a_time(runs: dict[str, Any]) -> None:
    assert len(runs["prompts"]) == 45
    assert len({repr(p) for p in runs["prompts"]}) >= 43  # the variants really differ
    for got, want in zip(runs["batched"], runs["single"]):
        assert (got.text, got.tokens_in, got.tokens_out) == \
            (want.text, want.tokens_in, want.tokens_out)
    assert sum(bool(c.text) for c in runs["single"]) >= 40  # real answers, not blanks
    kinds = {m[-1]["content"].split("\n")[-1] for m in runs["prompts"]}
    assert len(kinds) >= 3  # several answer instructions (task kinds)


def test_shared_prefixes_are_evaluated_about_once(runs: dict[str, Any]) -> None:
    from robustify.models.local_batch import unique_prefix_tokens
    from robustify.models.local_chat import prepare

    backend = runs["backend"]
    llm, _ = backend._model()
    tokens = [prepare(llm, p, backend._kwargs).tokens for p in runs["prompts"]]
    counts = runs["counts"]
    assert counts["requests"] == 45 and counts["fallback_requests"] == 0
    assert counts["prompt_tokens"] == sum(len(t) for t in tokens)
    unique = unique_prefix_tokens(tokens)
    assert unique < counts["prompt_tokens"] / 2  # the few-shot turns are shared
    # 1,883 unique-prefix tokens of 7,996 (the 45 prompts). Run alone, the batched backend
    # evaluates between 1x and 1.6x of them (the order requests arrive in varies: short
    # stretches shared inside questions are evaluated again when their sequence was reused
    # meanwhile; the whole default job stays near 1.02x, benchmarks.local_model). In the
    # full suite the loaded model is shared with earlier tests and its KV buffers may
    # already hold some prefixes, so fewer than the unique-prefix tokens can be evaluated:
    # only the upper bound holds whatever ran before.
    assert 0 < counts["evaluated_prompt_tokens"] <= 1.6 * unique
    # answer tokens are fed back to the model, except each answer's last one
    answers = sum(c.tokens_out for c in runs["batched"])
    assert answers - 45 <= counts["answer_tokens"] <= answers


def test_unique_prefix_tokens_counts_the_prefix_tree() -> None:
    from robustify.models.local_batch import unique_prefix_tokens

    assert unique_prefix_tokens([[1, 2, 3], [1, 2, 4], [1, 5], [7]]) == 3 + 1 + 1 + 1
    assert unique_prefix_tokens([[1, 2], [1, 2]]) == 2
    assert unique_prefix_tokens([]) == 0


def test_forward_passes_replay_llama_cpp_split() -> None:
    from robustify.models.local_batch import forward_passes

    # one token of each of 4 consecutive sequences, then the rest of sequence 2's prompt
    assert forward_passes([(0, 1), (1, 1), (2, 19), (3, 1)]) == [4, 18]
    assert forward_passes([(0, 1), (2, 1)]) == [1, 1]  # a gap in the ids splits a pass
    assert forward_passes([(0, 19), (1, 19)]) == [38]  # equal prompts share a pass
    assert forward_passes([(3, 5), (4, 1), (5, 5)]) == [3, 4, 4]
    assert forward_passes([(0, 300), (1, 300)]) == [512, 88]  # n_ubatch = 512


def test_what_each_sequence_alone_holds_matches_every_pairwise_comparison() -> None:
    """_worths finds each sequence's longest shared prefix among its sorted neighbours;
    it must equal the comparison with every other sequence."""
    import random
    import types

    from robustify.models.local_batch import BatchEngine, _Slot, common_prefix

    rng = random.Random(7)
    stems = [[1, 2, 3, 4, 5], [1, 2, 9], [8, 8], []]
    for _ in range(200):
        slots = [_Slot(i) for i in range(rng.randint(1, 24))]
        for slot in slots:
            stem = list(rng.choice(stems))
            slot.kv = stem[:rng.randint(0, len(stem))] + [rng.randint(1, 4) for _ in
                                                           range(rng.randint(0, 6))]
        want = {s.seq: len(s.kv) - max((common_prefix(s.kv, o.kv) for o in slots
                                        if o is not s), default=0) for s in slots}
        assert BatchEngine._worths(types.SimpleNamespace(_slots=slots)) == want


def test_answer_text_grows_piece_by_piece_as_detokenize_gives_it(local_model_path: Path) -> None:
    """The answer's bytes are kept piece by piece; they must equal llama-cpp-python's
    detokenize of all answer tokens at every step (multi-byte characters included)."""
    from robustify.models.local import LocalBackend
    from robustify.models.local_chat import AnswerText

    llm, _ = LocalBackend("smollm2")._model()
    text = "Größe: 42 °C, naïve café — 東京 🙂 and a stop word here.".encode()
    tokens = llm.tokenize(text, add_bos=False)
    prompt = llm.tokenize(b"Say it.", add_bos=True)
    answer = AnswerText(llm, prompt, stop=[], max_tokens=len(tokens) + 5, n_ctx=2048)
    assert answer._pieces is not None  # llama.cpp's own tokenizer: piece by piece
    for i, token in enumerate(tokens):
        assert not answer.feed(token)
        assert answer._text() == llm.detokenize(tokens[:i + 1], prev_tokens=prompt)
    assert answer.feed(llm.token_eos()) and answer.finish_reason == "stop"
    assert answer.text == llm.detokenize(tokens) == text
    stopped = AnswerText(llm, prompt, stop=["stop word"], max_tokens=100, n_ctx=2048)
    done = [stopped.feed(t) for t in tokens]
    assert done[-1] or any(done)
    assert stopped.content() == text.decode()[:text.decode().index("stop word")]


def test_new_prompts_share_a_call_only_without_one_token_pieces() -> None:
    from robustify.models.local_batch import BatchEngine, _Slot

    def slots(*spec: tuple[int, int]) -> list[Any]:
        made = []
        for seq, n in spec:
            slot = _Slot(seq)
            slot.pending = list(range(n))
            made.append(slot)
        return made

    def calls(*spec: tuple[int, int]) -> list[list[int]]:
        return [[s.seq for s in call] for call in BatchEngine._prompt_calls(slots(*spec))]

    assert calls((3, 19), (4, 19)) == [[3, 4]]  # one pass of 2 x 19
    assert calls((3, 19), (4, 23)) == [[3, 4]]  # 2 x 19, then 4 tokens of sequence 4
    assert calls((3, 19), (4, 20)) == [[3], [4]]  # would leave sequence 4 one token
    assert calls((3, 19), (9, 20)) == [[3, 9]]  # not consecutive: a pass each
    assert calls((0, 300), (5, 300)) == [[0], [5]]  # over the 512-token batch
    assert calls((2, 40),) == [[2]]


def test_a_prompt_token_alone_in_its_pass_changes_logits(runs: dict[str, Any]) -> None:
    """Why a new prompt never shares a pass with answer tokens (local_batch "Exactness"):
    cutting a prompt anywhere keeps the logits bit for bit, unless a piece holds a
    single token, which llama.cpp computes with other attention kernels."""
    import numpy as np

    from robustify.models.local_batch import BatchEngine
    from robustify.models.local_chat import prepare

    backend = runs["backend"]
    llm, _ = backend._model()
    tokens = prepare(llm, runs["prompts"][13], backend._kwargs).tokens  # a numeric item
    engine = BatchEngine(llm, n_seq=2, n_ctx=2048, n_threads=1, seq_cells=512,
                         fallback=lambda m, k: ("", {}, None))
    low, batch = engine._low, engine._batch

    def last_logits(pieces: list[int], seq: int = 0) -> Any:
        engine.forget()
        start = 0
        for size in pieces:
            for j in range(size):
                batch.token[j], batch.pos[j], batch.n_seq_id[j] = \
                    tokens[start + j], start + j, 1
                batch.seq_id[j][0] = seq
                batch.logits[j] = start + j == len(tokens) - 1
            batch.n_tokens = size
            assert low.llama_decode(engine.ctx, batch) == 0
            start += size
        assert start == len(tokens)
        return np.ctypeslib.as_array(low.llama_get_logits_ith(engine.ctx, size - 1),
                                     shape=(llm.n_vocab(),)).copy()
    try:
        n = len(tokens)
        whole = last_logits([n])
        assert np.array_equal(last_logits([100, n - 100]), whole)
        assert np.array_equal(last_logits([1, n - 1]), whole)  # the first token is alone anyway
        assert np.array_equal(last_logits([n], seq=1), whole)
        alone = last_logits([100, 1, n - 101])
        assert not np.array_equal(alone, whole) and np.abs(alone - whole).max() > 1e-3
    finally:
        engine.close()


def test_thread_count_does_not_change_answers(runs: dict[str, Any]) -> None:
    from robustify.models.local import LocalBackend

    two = LocalBackend("smollm2", n_threads=2)
    answers = _gather(two, runs["prompts"][:12])
    assert [a.text for a in answers] == [a.text for a in runs["single"][:12]]


def test_a_prompt_too_long_fails_alone(runs: dict[str, Any]) -> None:
    backend = runs["backend"]
    huge = [{"role": "user", "content": "word " * 3000}]
    prompts = runs["prompts"][:3] + [huge] + runs["prompts"][3:6]
    answers = _gather(backend, prompts)
    assert isinstance(answers[3], ModelCallError)
    assert "exceed context window of 2048" in str(answers[3])
    assert [a.text for a in answers[:3] + answers[4:]] == \
        [a.text for a in runs["single"][:6]]


def test_temperature_above_zero_takes_the_exact_path(local_model_path: Path) -> None:
    from robustify.models.local import LocalBackend
    from robustify.records import GenerationParams

    backend = LocalBackend("smollm2", params=GenerationParams(temperature=0.7))
    assert backend.batch == 1 and backend.max_concurrency == 1 and backend.stats() == {}


def test_a_failing_step_fails_its_requests_and_the_worker_carries_on(
        runs: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from robustify.models.local_batch import BatchEngine

    llm, lock = runs["backend"]._model()
    engine = BatchEngine(llm, n_seq=2, n_ctx=2048, n_threads=1, seq_cells=512,
                         fallback=lambda m, k: ("", {}, None))
    try:
        kwargs = runs["backend"]._kwargs
        broken = RuntimeError("decode exploded")

        def explode(group: Any) -> None:
            raise broken
        monkeypatch.setattr(engine, "_decode", explode)
        futures = [engine.submit(p, kwargs) for p in runs["prompts"][:3]]
        for future in futures:
            with pytest.raises(RuntimeError, match="decode exploded"):
                future.result(timeout=60)
        monkeypatch.undo()
        text, usage, finish = engine.submit(runs["prompts"][0], kwargs).result(timeout=120)
        assert text == runs["single"][0].text and finish in ("stop", "length")
    finally:
        engine.close()
    assert engine.ctx is None
    late = engine.submit(runs["prompts"][0], runs["backend"]._kwargs)
    with pytest.raises(RuntimeError, match="closed"):
        late.result(timeout=1)


def test_closing_fails_waiting_requests_without_hanging(runs: dict[str, Any]) -> None:
    from robustify.models.local_batch import BatchEngine

    llm, _ = runs["backend"]._model()
    engine = BatchEngine(llm, n_seq=1, n_ctx=2048, n_threads=1, seq_cells=512,
                         fallback=lambda m, k: ("", {}, None))
    futures = [engine.submit(p, runs["backend"]._kwargs) for p in runs["prompts"][:6]]
    engine.close(timeout=60)
    done, pending = concurrent.futures.wait(futures, timeout=5)
    assert not pending
    outcomes = [f.exception() for f in futures]
    assert any(isinstance(e, RuntimeError) and "closed" in str(e) for e in outcomes)


def test_spare_sequences_keep_prefixes_and_answers_stay_exact(runs: dict[str, Any]) -> None:
    """Two answering sequences and two spare ones under pressure (45 prompts, 4 in
    flight): prefixes are kept in the spares, copied back from them, and no answer
    changes; without spares more prompt tokens are evaluated."""
    from robustify.models.local import _exact_call
    from robustify.models.local_batch import BatchEngine

    backend = runs["backend"]
    llm, lock = backend._model()
    prompts, kwargs = runs["prompts"], backend._kwargs
    order = prompts[0::2] + prompts[1::2] + prompts[::3]  # revisit earlier prefixes

    def run(spare: int) -> tuple[list[str], dict[str, int]]:
        engine = BatchEngine(llm, n_seq=2, n_ctx=2048, n_threads=1, seq_cells=1024,
                             fallback=_exact_call(llm, lock), spare=spare)
        try:
            texts = []
            for start in range(0, len(order), 4):
                futures = [engine.submit(p, kwargs) for p in order[start:start + 4]]
                texts += [f.result(timeout=300)[0] for f in futures]
            return texts, engine.stats()
        finally:
            engine.close()
    expected = {repr(p): a.text for p, a in zip(prompts, runs["single"])}
    kept_texts, kept = run(spare=2)
    plain_texts, plain = run(spare=0)
    assert kept_texts == plain_texts == [expected[repr(p)] for p in order]
    assert kept["kept_prefixes"] > 0 and plain["kept_prefixes"] == 0
    assert kept["evaluated_prompt_tokens"] < plain["evaluated_prompt_tokens"]
