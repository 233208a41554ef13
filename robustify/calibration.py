"""Calibrate noise to a user's own traffic: real messages in, a fitted profile file out.

A thin layer over :mod:`perturbations.realism` (the statistics and the fitter live in the
lower layer): read the messages, measure them, fit a profile whose variants of clean
benchmark items show the same statistics, save it as YAML, and lay the statistics side by
side: real traffic, the fitted variants, and the built-in profiles for comparison.

>>> import robustify
>>> cal = robustify.calibrate("support_messages.csv", out="support.yaml",
...                           column="body")                                   # doctest: +SKIP
>>> print(cal.format_table())                                                  # doctest: +SKIP
>>> robustify.evaluate(transforms=["profile:support.yaml"])                    # doctest: +SKIP

Without a severity, ``profile:support.yaml`` reproduces the traffic (one variant per
item); with ``--severity`` each level scales the fit as stress.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from perturbations.errors import ConfigError
from perturbations.realism import (FittedProfile, TrafficStats, clean_questions, fit_profile,
                                   measure, realism_table, stats_of_spec)

__all__ = ["calibrate", "Calibration", "COMPARED_PROFILES", "format_realism_table"]

COMPARED_PROFILES = ("typos@realistic", "typos@low", "mobile_typing@low", "customer_chat@low",
                     "non_native@low", "voice_transcript@low")
"""Built-in settings shown beside the fit, so the user sees how far each is from the traffic."""


@dataclass
class Calibration:
    """What :func:`calibrate` measured and fitted."""

    profile: FittedProfile
    """The fitted profile (parts, severities, shares; target and fitted statistics)."""
    real: TrafficStats
    """Statistics of the user's messages."""
    table: list[dict[str, Any]] = field(default_factory=list)
    """One row per statistic: real traffic, fitted variants, each compared setting; then
    the distance to the traffic and the statistics outside its range."""
    path: Path | None = None
    """Where the profile was written, if it was."""

    def format_table(self) -> str:
        """The side-by-side table as aligned text (what the CLI prints)."""
        return format_realism_table(self.table)

    @property
    def spec(self) -> str | None:
        """The spec that applies the saved profile (``profile:PATH``)."""
        return f"profile:{self.path}" if self.path is not None else None


def calibrate(messages: str | os.PathLike[str] | Sequence[str], out: str | os.PathLike[str] | None = None,
              *, column: str | None = None, format: str | None = None,
              data: str | os.PathLike[str] | Sequence[str] | None = None, seed: int = 0,
              limit: int | None = None, compare: Sequence[str] = COMPARED_PROFILES,
              name: str | None = None) -> Calibration:
    """Fit a noise profile to real messages and, with ``out``, save it.

    Args:
        messages: A file of real user messages (one per line, or a column of a CSV, TSV,
            JSONL, JSON or Parquet file) or the messages themselves. No labels needed.
        out: Where to write the profile (``.yaml``; ``.json`` writes JSON).
        column: The table column holding the messages (CLI: ``--map input=COLUMN``).
        format: ``lines`` or a ``--format`` name, when the file name does not tell.
        data: The clean texts to fit on: a benchmark (``"sample"``, a file) whose inputs
            are used, or a list of texts; default the 60 clean questions shipped with
            robustify. Fitting on your own benchmark makes its variants match best.
        seed: Seed of the fit (deterministic for a seed).
        limit: Use the first ``limit`` messages.
        compare: Settings measured beside the fit in :attr:`Calibration.table`.
        name: The profile's name (default: the messages file's stem).

    Raises:
        DataError: unreadable messages file or data (file, line and column named).
        ConfigError: bad arguments (an unwritable ``out`` is found before any work).
    """
    from robustify.atomic import check_writable

    if out is not None:
        out = Path(out)
        if out.is_dir():
            raise ConfigError(f"{out}: is a directory; the profile needs a file name")
        check_writable(out.parent if str(out.parent) else Path("."))
    texts, source = _messages(messages, column=column, format=format, limit=limit)
    clean = _clean_texts(data)
    real = measure(texts)
    profile = fit_profile(real, clean, seed=seed,
                          name=name or (Path(source).stem if source else "traffic"),
                          source={"file": source, "messages": len(texts)} if source else
                          {"messages": len(texts)})
    columns: dict[str, TrafficStats] = {"real traffic": real, "fitted": profile.fitted}
    for spec in compare:
        columns[spec] = stats_of_spec(spec, clean, seed=seed)
    table = realism_table(columns, reference="real traffic")
    path = profile.save(out) if out is not None else None
    return Calibration(profile=profile, real=real, table=table,
                       path=Path(path) if path is not None else None)


def _messages(messages: Any, *, column: str | None, format: str | None,
              limit: int | None) -> tuple[list[str], str | None]:
    if isinstance(messages, (str, os.PathLike)):
        from robustify.data.messages import read_messages

        return read_messages(messages, column=column, format=format, limit=limit), str(messages)
    texts = [str(m) for m in messages if str(m).strip()]
    if not texts:
        raise ConfigError("calibrate needs at least one non-blank message")
    return texts[:limit] if limit else texts, None


def _clean_texts(data: Any) -> list[str]:
    if data is None:
        return list(clean_questions())
    if isinstance(data, (str, os.PathLike)):
        from robustify.data import load_items

        return [item.input for item in load_items(data)]
    return [str(t) for t in data]


def format_realism_table(rows: Sequence[dict[str, Any]]) -> str:
    """Aligned text of :func:`perturbations.realism.realism_table` rows."""
    if not rows:
        return ""
    names = [k for k in rows[0] if k != "statistic"]
    width = max(len(str(r["statistic"])) for r in rows)

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
        return str(value)

    widths = [max(len(n), *(len(cell(r.get(n, ""))) for r in rows if
                                r["statistic"] != "outside real range")) for n in names]
    lines = [f"{'':<{width}}  " + "  ".join(f"{n:>{w}}" for n, w in zip(names, widths))]
    outside = None
    for r in rows:
        if r["statistic"] == "outside real range":
            outside = r
            continue
        lines.append(f"{r['statistic']:<{width}}  " +
                     "  ".join(f"{cell(r.get(n, '')):>{w}}" for n, w in zip(names, widths)))
    if outside is not None:
        lines.append("outside the real range:")
        lines += [f"  {n}: {outside.get(n)}" for n in names if outside.get(n) not in ("-", "", None)]
    return "\n".join(lines)
