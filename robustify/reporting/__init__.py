"""Reporting: results -> charts, report.html, report.md and the CSV/JSONL files of a run."""

from __future__ import annotations

from robustify.reporting.run_report import (load_results, rebuild_report, write_report,
                                            write_results_jsonl)

__all__ = ["write_report", "rebuild_report", "load_results", "write_results_jsonl"]
