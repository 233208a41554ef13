"""Log-likelihood of continuations with an in-process llama.cpp model.

For each option, the sum of the log-probabilities of its tokens given the chat prompt
(rendered with the model's own chat template and opened for the assistant's turn), as
lm-eval's ``multiple_choice`` output type does. The prompt is evaluated once per call;
each option then re-evaluates only the last prompt token and its own tokens one at a
time, reading the next-token logits through llama.cpp's low-level API, so the shared
model (loaded with ``logits_all=False`` for generation) needs no second copy.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any, Sequence

import numpy as np

from robustify.models import llama_thread
from robustify.models.base import ModelCallError, one_line

__all__ = ["aloglik", "loglik", "chat_prompt"]


def chat_prompt(llm: Any, messages: list[dict[str, str]]) -> str:
    """The prompt text the model's chat template makes of ``messages`` (assistant turn open)."""
    from llama_cpp import llama_chat_format

    template = (getattr(llm, "metadata", None) or {}).get("tokenizer.chat_template")
    if not template:
        raise ModelCallError("the model file has no chat template; log-likelihood scoring "
                             "needs one to place the answer")
    model = llm._model
    eos, bos = llm.token_eos(), llm.token_bos()
    formatter = llama_chat_format.Jinja2ChatFormatter(
        template=template,
        eos_token=model.token_get_text(eos) if eos != -1 else "",
        bos_token=model.token_get_text(bos) if bos != -1 else "",
        stop_token_ids=[eos])
    return formatter(messages=messages).prompt


def _last_logprobs(llama_cpp: Any, llm: Any) -> np.ndarray:
    n_vocab = llm.n_vocab()
    pointer = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
    logits = np.ctypeslib.as_array(pointer, shape=(n_vocab,)).astype(np.float64)
    top = logits.max()
    return logits - (top + math.log(np.exp(logits - top).sum()))


def loglik(backend: Any, messages: list[dict[str, str]],
           continuations: Sequence[str]) -> list[float]:
    """Blocking: summed log-probability of each continuation after the chat prompt.

    The continuation's tokens are those the prompt followed by the continuation
    tokenizes to beyond the prompt's own tokens (as lm-eval splits them).
    """
    llm, lock = backend._model()
    return llama_thread.call(_loglik, llm, lock, backend.label, messages, continuations)


def _loglik(llm: Any, lock: Any, label: str, messages: list[dict[str, str]],
            continuations: Sequence[str]) -> list[float]:
    import llama_cpp

    with lock:
        try:
            prompt = chat_prompt(llm, messages)
            context = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
            if not context:
                raise ModelCallError("empty prompt")
            out = []
            for continuation in continuations:
                whole = llm.tokenize((prompt + continuation).encode("utf-8"), add_bos=False,
                                     special=True)
                cut = len(context)
                while cut > 0 and whole[:cut] != context[:cut]:
                    cut -= 1  # the option merged with the prompt's last token
                cut = max(1, min(cut, len(whole) - 1))
                if len(whole) > llm.n_ctx():
                    raise ModelCallError(f"prompt and option take {len(whole)} tokens, more "
                                         f"than the context window ({llm.n_ctx()})")
                # keep the cached prefix, re-evaluate from the last context token so its
                # logits (the first option token's distribution) are the latest
                llm.n_tokens = _shared_prefix(llm, whole, cut - 1)
                llm.eval(whole[llm.n_tokens:cut])
                total = 0.0
                rest = whole[cut:]
                for position, token in enumerate(rest):
                    total += float(_last_logprobs(llama_cpp, llm)[token])
                    if position + 1 < len(rest):
                        llm.eval([token])
                out.append(total)
            return out
        except ModelCallError:
            raise
        except Exception as exc:
            raise ModelCallError(f"{label}: {one_line(exc, limit=200)}") from None


def _shared_prefix(llm: Any, tokens: list[int], limit: int) -> int:
    """How many leading ``tokens`` the model's cache already holds (at most ``limit``)."""
    held = llm.n_tokens
    ids = llm.input_ids
    n = 0
    stop = min(held, limit)
    while n < stop and int(ids[n]) == tokens[n]:
        n += 1
    return n


async def aloglik(backend: Any, messages: list[dict[str, str]],
                  continuations: Sequence[str]) -> list[float]:
    """:func:`loglik` without blocking the event loop (on the llama thread, see
    :mod:`robustify.models.llama_thread`)."""
    llm, lock = await asyncio.to_thread(backend._model)
    return await llama_thread.acall(_loglik, llm, lock, backend.label, messages,
                                    continuations)
