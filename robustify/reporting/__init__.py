"""Reporting: results -> charts, report.html, report.md and the CSV/JSONL files of a run.

- :mod:`.format`: the one place numbers and text are formatted (and escaped);
- :mod:`.document`: the one document model and its HTML/Markdown renderers, used by the
  run, leakage and comparison reports;
- :mod:`.charts`: the chart list (a registry) the report and ``RunResult`` iterate;
- :mod:`.plots`: the chart functions (``ax=None`` -> Axes);
- :mod:`.results_io`: results.jsonl written and a saved run read back;
- :mod:`.headline`: the headline box (validity warnings first) and the run facts table;
- :mod:`.browse`: the "Browse every item" section (folded, no script);
- :mod:`.run_report`: the content of the run report.
"""

from __future__ import annotations

from robustify.reporting.results_io import load_results, write_results_jsonl
from robustify.reporting.run_report import rebuild_report, write_report

__all__ = ["write_report", "rebuild_report", "load_results", "write_results_jsonl"]
