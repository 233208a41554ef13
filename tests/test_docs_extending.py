"""docs/extending.md stays true: every Python example in it runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = (ROOT / "docs" / "extending.md").read_text(encoding="utf-8")
EXAMPLES = re.findall(r"^## (.+?)\n.*?```python\n(.*?)```", PAGE, re.S | re.M)


def test_every_section_has_an_example() -> None:
    titles = [title for title, _ in EXAMPLES]
    assert titles == ["A transform", "A backend", "A scorer", "A data preset", "A chart"]


@pytest.mark.parametrize("title,code", EXAMPLES, ids=[t for t, _ in EXAMPLES])
def test_example_runs(title: str, code: str) -> None:
    from perturbations import registry as transforms
    from robustify.data.formats import FORMATS
    from robustify.models.registry import BACKENDS
    from robustify.reporting.charts import CHARTS
    from robustify.scoring.registry import SCORERS

    try:
        exec(compile(code, f"docs/extending.md ({title})", "exec"), {"__name__": "docs_example"})
    finally:  # the examples register *_docs names: leave the registries as they were
        for registry in (BACKENDS._items, SCORERS._items, FORMATS._items, CHARTS._items,
                         transforms._REGISTRY):
            for name in [n for n in registry if n.endswith("_docs")]:
                del registry[name]
