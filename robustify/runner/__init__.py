"""The runner: variants x models -> answers, concurrent, cached and resumable.

- :mod:`.plan` groups the rows into prompts (identical prompts sent once, unchanged
  variants reuse their clean answer) and keeps each backend's bill;
- :mod:`.feed` plans the variants in slices between the calls and feeds each
  backend's queue (cache hits answered at once);
- :mod:`.store` keeps the rows column by column until they become the results frame;
- :mod:`.execute` runs the prompts with a bound per backend, scores the answers and
  returns the frame;
- :mod:`.cache` is the SQLite response cache (WAL, safe under concurrency);
- :mod:`.progress` is the progress display (a bar on a terminal, timed lines in logs).
"""

from __future__ import annotations

from robustify.runner.cache import ResponseCache, default_cache_path, open_cache
from robustify.runner.execute import (MAX_CALLS_ERROR, BackendStats, arun_queries,
                                      estimate_calls, run_queries)

__all__ = ["run_queries", "arun_queries", "estimate_calls", "BackendStats", "MAX_CALLS_ERROR",
           "ResponseCache", "default_cache_path", "open_cache"]
