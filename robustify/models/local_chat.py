"""Chat prompts and answer text for batched local generation, exactly as llama-cpp-python.

:func:`prepare` runs ``Llama.create_chat_completion``'s own code (chat handler, chat
template, tokenizer, stop strings) on a proxy whose ``create_completion`` only records
its arguments, so the prompt tokens are the very ones the one-at-a-time path evaluates.
:class:`AnswerText` replays ``Llama._create_completion``'s per-token loop (end-of-generation
tokens, the multi-byte UTF-8 guard, stop strings, ``max_tokens``) so a greedy token
stream gives the same text, finish reason and token counts.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Prepared", "AnswerText", "prepare"]

# create_completion arguments whose non-default values change the tokens chosen; any of
# them set means the request is not plain greedy decoding and takes the exact path.
_NEUTRAL = {"repeat_penalty": 1.0, "frequency_penalty": 0.0, "presence_penalty": 0.0,
            "grammar": None, "logits_processor": None,
            "logit_bias": None, "logprobs": None, "stream": False, "suffix": None}


def _harmless(criteria: Any, prompt: list[int], llm: Any) -> bool:
    """True if the chat template's stopping criteria cannot change a greedy answer.

    llama-cpp-python's Jinja2 chat formatter adds ``stop_on_last_token``: stop when the
    last *evaluated* token is the end-of-sequence token. In a greedy run an end token
    ends the answer before it is evaluated, so it can only fire on a prompt that itself
    ends with an end token; such prompts take the one-at-a-time path.
    """
    import llama_cpp

    if criteria is None:
        return True
    if not all(getattr(fn, "__name__", "") == "stop_on_last_token" for fn in criteria):
        return False
    return bool(prompt) and not llama_cpp.llama_vocab_is_eog(llm._model.vocab, prompt[-1])


@dataclass
class Prepared:
    """One request ready for the batch: prompt tokens, stop strings, token budget.

    ``greedy`` is False when the parameters need llama-cpp-python's full sampler
    (temperature > 0, penalties, grammars...); such requests use the one-at-a-time path.
    """

    tokens: list[int]
    stop: list[str] = field(default_factory=list)
    max_tokens: int | None = 16
    greedy: bool = True


class _Recorder:
    """Stands in for the ``Llama`` object inside the chat handler; records the completion call."""

    def __init__(self, llm: Any) -> None:
        self._llm = llm
        self.call: dict[str, Any] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llm, name)

    def create_completion(self, **kwargs: Any) -> dict[str, Any]:
        self.call = kwargs
        return {"id": "", "object": "text_completion", "created": 0, "model": "",
                "choices": [{"text": "", "index": 0, "logprobs": None,
                             "finish_reason": None}], "usage": {}}


def prepare(llm: Any, messages: list[dict[str, str]], kwargs: dict[str, Any]) -> Prepared:
    """Format and tokenize ``messages`` as ``llm.create_chat_completion(**kwargs)`` would."""
    recorder = _Recorder(llm)
    type(llm).create_chat_completion(recorder, messages=messages, **kwargs)
    call = recorder.call
    if call is None or not isinstance(call.get("prompt"), list):  # pragma: no cover
        return Prepared(tokens=[], greedy=False)
    stop = call.get("stop") or []
    stop = [stop] if isinstance(stop, str) else list(stop)
    greedy = call.get("temperature") == 0.0 and all(
        call.get(name, neutral) == neutral for name, neutral in _NEUTRAL.items()) and \
        _harmless(call.get("stopping_criteria"), list(call["prompt"]), llm)
    return Prepared(tokens=list(call["prompt"]), stop=stop,
                    max_tokens=call.get("max_tokens", 16), greedy=greedy)


class AnswerText:
    """Feed greedy tokens one by one; ``done`` once the answer is complete.

    Mirrors the token loop of ``Llama._create_completion`` (llama-cpp-python 0.3.x) for a
    list prompt without streaming or log-probabilities, so the text is byte-identical.

    Args:
        llm: The ``Llama`` object (tokenizer and vocabulary).
        prompt: Prompt tokens.
        stop: Stop strings.
        max_tokens: Answer budget (None or <= 0: the rest of the context window).
        n_ctx: Context window of one sequence.
    """

    def __init__(self, llm: Any, prompt: list[int], stop: list[str],
                 max_tokens: int | None, n_ctx: int) -> None:
        import llama_cpp

        self._llm = llm
        self._is_eog = llama_cpp.llama_vocab_is_eog
        self._vocab = llm._model.vocab
        self.prompt = prompt
        if max_tokens is None or max_tokens <= 0:
            max_tokens = n_ctx - len(prompt)
        self.max_tokens = max_tokens if max_tokens + len(prompt) < n_ctx \
            else n_ctx - len(prompt)
        self._stops = [s.encode("utf-8") for s in stop]
        self.tokens: list[int] = []
        self._multibyte_fix = 0
        self.text = b""
        self.finish_reason: str | None = None
        # llama.cpp's own tokenizer detokenizes piece by piece, so the answer's bytes grow
        # by one piece a token (the whole answer was detokenized again at every token:
        # 1.4 s of the default job). Another tokenizer (a Hugging Face one) is asked whole.
        from llama_cpp.llama_tokenizer import LlamaTokenizer

        self._pieces: bytes | None = (b"" if type(llm.tokenizer_) is LlamaTokenizer
                                      else None)
        self._buffer = (ctypes.c_char * 32)()
        self._to_piece = llama_cpp.llama_token_to_piece
        self._bos = llm.token_bos()

    @property
    def done(self) -> bool:
        """True once the answer ended (end token, stop string or token budget)."""
        return self.finish_reason is not None

    def _text(self) -> bytes:
        """``llm.detokenize(self.tokens, prev_tokens=self.prompt)``."""
        if self._pieces is None:
            return self._llm.detokenize(self.tokens, prev_tokens=self.prompt)
        text = self._pieces
        # as LlamaModel.detokenize: a leading space goes when the first token is BOS
        return text[1:] if self.tokens and self.tokens[0] == self._bos \
            and text[:1] == b" " else text

    def feed(self, token: int) -> bool:
        """Take the next greedy token; return :attr:`done`."""
        if self._is_eog(self._vocab, token):
            self.text = self._text()
            self.finish_reason = "stop"
            return True
        self.tokens.append(token)
        if self._pieces is not None:  # LlamaModel.detokenize's loop, one token of it
            n = self._to_piece(self._vocab, token, self._buffer, 32, 0, False)
            self._pieces += bytes(self._buffer[:n])
        all_text = self._text()
        for k, char in enumerate(all_text[-3:]):
            k = 3 - k
            for num, pattern in ((2, 192), (3, 224), (4, 240)):
                if num > k and pattern & char == pattern:
                    self._multibyte_fix = num - k
        if self._multibyte_fix > 0:
            self._multibyte_fix -= 1
            return False
        hits = [s for s in self._stops if s in all_text]
        if hits:
            self.text = all_text[: all_text.index(hits[0])]
            self.finish_reason = "stop"
            return True
        if len(self.tokens) >= self.max_tokens:
            self.text = all_text
            self.finish_reason = "length"
            return True
        return False

    def content(self) -> str:
        """The answer as ``create_chat_completion`` returns it in ``message.content``."""
        return self.text.decode("utf-8", errors="ignore")
