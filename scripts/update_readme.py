"""Regenerate the generated blocks of README.md: the transform catalogue and the levels table.

Run after adding or changing a transform: ``python scripts/update_readme.py``.
``tests/test_readme.py`` fails when the README and the registry disagree.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BLOCKS = {
    "transforms": ["transforms", "--markdown"],
    "levels": ["transforms", "--levels", "--markdown"],
}
"""Block name -> the CLI command whose output fills ``<!-- NAME:start ... -->`` to ``<!-- NAME:end -->``."""


def generated(name: str) -> str:
    """The Markdown that ``python -m robustify`` prints for block ``name``."""
    from robustify.cli import main

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        main(BLOCKS[name])
    return buffer.getvalue().strip()


def catalogue() -> str:
    """The Markdown table printed by ``python -m robustify transforms --markdown``."""
    return generated("transforms")


def render(readme: str, names: tuple[str, ...] = tuple(BLOCKS)) -> str:
    """README text with each generated block replaced by the current output."""
    for name in names:
        start, end = f"<!-- {name}:start", f"<!-- {name}:end -->"
        if start not in readme:
            continue
        head = readme[readme.index(start):readme.index("-->", readme.index(start)) + 3]
        pattern = re.compile(re.escape(start) + r".*?-->\n.*?" + re.escape(end), re.S)
        body = generated(name)
        readme = pattern.sub(lambda _: f"{head}\n{body}\n{end}", readme, count=1)
    return readme


if __name__ == "__main__":
    path = ROOT / "README.md"
    path.write_text(render(path.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"updated {path}")
