"""robustify's performance suite: measurements printed as ratios, not timed tests.

Run everything with ``python -m benchmarks`` (or ``python benchmarks/run_all.py``);
``--quick`` is a one-minute smoke run. Figures and how to read them:
``docs/performance.md``.
"""
