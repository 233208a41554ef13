"""Regenerate the generated blocks of README.md (the transform catalogue).

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

START = "<!-- transforms:start"
END = "<!-- transforms:end -->"


def catalogue() -> str:
    """The Markdown table printed by ``python -m robustify transforms --markdown``."""
    from robustify.cli import main

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        main(["transforms", "--markdown"])
    return buffer.getvalue().strip()


def render(readme: str) -> str:
    """README text with the catalogue block replaced by the current registry."""
    pattern = re.compile(re.escape(START) + r".*?-->\n.*?" + re.escape(END), re.S)
    head = readme[readme.index(START):readme.index("-->", readme.index(START)) + 3]
    return pattern.sub(lambda _: f"{head}\n{catalogue()}\n{END}", readme, count=1)


if __name__ == "__main__":
    path = ROOT / "README.md"
    path.write_text(render(path.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"updated {path}")
