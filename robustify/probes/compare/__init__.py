"""Run-to-run comparison: did the new release (or fine-tune) get more robust, or less?

- :mod:`.stats`: runs loaded, models matched, rows paired, changes and their intervals
  (:func:`compare_runs`, :func:`compare_pair`);
- :mod:`.report`: the chart (:func:`plot_comparison`) and compare.html / .md / .csv
  (:func:`write_comparison_report`).

>>> table = compare_runs(["reports/v1", "reports/v2"])                 # doctest: +SKIP
>>> plot_comparison(table)                                             # doctest: +SKIP
>>> write_comparison_report(table, "reports/v1-vs-v2")                  # doctest: +SKIP

CLI: ``python -m robustify compare reports/v1 reports/v2 --out reports/v1-vs-v2``.
"""

from __future__ import annotations

from robustify.probes.compare.report import (comparison_label, plot_comparison,
                                             write_comparison_report)
from robustify.probes.compare.stats import (ALL_PRESERVING, CLEAN_ROW, COMPARE_COLUMNS,
                                            compare_pair, compare_runs, load_run)

__all__ = ["COMPARE_COLUMNS", "ALL_PRESERVING", "CLEAN_ROW", "load_run", "compare_runs",
           "compare_pair", "comparison_label", "plot_comparison", "write_comparison_report"]
