"""``python -m benchmarks``: run the whole performance suite (see :mod:`benchmarks.run_all`)."""

from __future__ import annotations

from benchmarks.run_all import main

raise SystemExit(main())
