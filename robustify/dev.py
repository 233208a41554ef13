"""Developer views of the code itself: module sizes and the import graph, with its rules.

``python -m robustify.dev graph`` prints every room (package or top-level module) with its
layer and size, the imports between rooms, and any import that breaks the rules below;
``python -m robustify.dev sizes`` lists the modules by size. ``tests/test_architecture.py``
runs the same checks, so a new cycle or an upward import fails the suite.

The rules: imports go downward only. A module may import its own room and rooms of a
lower layer, never a room of its own layer or above. Lazy imports inside functions count
(they are dependencies all the same); imports under ``if TYPE_CHECKING:`` do not.
``perturbations`` (the lower package) never imports robustify, pandas, matplotlib or openai.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

__all__ = ["LAYERS", "FORBIDDEN_IN_PERTURBATIONS", "Import", "room_of", "layer_of", "imports",
           "violations", "module_cycles", "module_sizes", "main"]

ROOT = Path(__file__).resolve().parents[1]

LAYERS: dict[str, int] = {
    "perturbations": 0,
    "robustify._secrets": 1, "robustify.errors": 1, "robustify.records": 1,
    "robustify.atomic": 1,
    "robustify.data": 2, "robustify.models": 2, "robustify.prompts": 2, "robustify.scoring": 2,
    "robustify.runner": 3, "robustify.calibration": 3,
    "robustify.analysis": 4,
    "robustify.reporting": 5,
    "robustify.probes": 6,
    "robustify.pipeline": 7,
    "robustify.cli": 8, "robustify.dev": 8,
    "robustify": 9,
}
"""Room -> layer, bottom (0) to top. A room is a package or a top-level module."""

FORBIDDEN_IN_PERTURBATIONS = ("robustify", "pandas", "matplotlib", "openai", "httpx2",
                              "llama_cpp", "tqdm")
"""What the lower package may never import (it must stay light and model-free)."""


@dataclass(frozen=True)
class Import:
    """One import statement of one of our modules."""

    source: str
    """Importing module, dotted (``robustify.runner.execute``)."""
    target: str
    """Imported module, dotted, resolved (``robustify.runner.cache``)."""
    line: int
    lazy: bool
    """Inside a function (runs on first use, not at import)."""


def room_of(module: str) -> str:
    """The room of a dotted module name: the longest key of :data:`LAYERS` it starts with."""
    best = ""
    for room in LAYERS:
        if (module == room or module.startswith(room + ".")) and len(room) > len(best):
            best = room
    return best


def layer_of(module: str) -> int | None:
    """The layer of a module, ``None`` for modules outside both packages."""
    room = room_of(module)
    return LAYERS[room] if room else None


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _submodule(root: Path, module: str, name: str) -> str:
    base = root / Path(*module.split("."))
    if (base / f"{name}.py").is_file() or (base / name / "__init__.py").is_file():
        return f"{module}.{name}"
    return module


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(root: Path = ROOT, packages: Sequence[str] = ("robustify", "perturbations")
            ) -> list[Import]:
    """Every import of every module of ``packages`` (relative ones resolved)."""
    found: list[Import] = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            module = _module_name(path, root)
            is_package = path.name == "__init__.py"
            tree = ast.parse(path.read_text(encoding="utf-8"))

            def visit(node: ast.AST, lazy: bool) -> None:
                for child in ast.iter_child_nodes(node):
                    if isinstance(child, ast.If) and _is_type_checking(child):
                        continue
                    inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
                    targets: list[str] = []
                    if isinstance(child, ast.Import):
                        targets = [alias.name for alias in child.names]
                    elif isinstance(child, ast.ImportFrom):
                        if child.level:
                            base = module.split(".")
                            base = base if is_package else base[:-1]
                            base = base[: len(base) - (child.level - 1)]
                            prefix = ".".join(base)
                            targets = ([f"{prefix}.{child.module}"] if child.module else
                                       [f"{prefix}.{alias.name}" for alias in child.names])
                        elif child.module:
                            targets = [child.module]
                        if child.module and isinstance(child, ast.ImportFrom):
                            # "from pkg import submodule" depends on the submodule
                            targets = [_submodule(root, t, alias.name)
                                       for t in targets[:1] for alias in child.names]
                    for target in targets:
                        found.append(Import(module, target, child.lineno, inner))
                    visit(child, inner)

            visit(tree, False)
    return found


def violations(found: Iterable[Import]) -> list[str]:
    """Every import that breaks the rules, one line each (module, line, why)."""
    problems = []
    for imp in found:
        top = imp.target.split(".")[0]
        if imp.source.split(".")[0] == "perturbations":
            if top in FORBIDDEN_IN_PERTURBATIONS:
                problems.append(f"{imp.source}:{imp.line} imports {imp.target}: perturbations "
                                f"never imports {top}")
            continue
        source_room, target_room = room_of(imp.source), room_of(imp.target)
        if not target_room or source_room == target_room:
            continue  # third-party, or inside its own room
        if LAYERS[target_room] >= LAYERS[source_room]:
            where = "a higher layer" if LAYERS[target_room] > LAYERS[source_room] else \
                "another room of its own layer"
            problems.append(f"{imp.source}:{imp.line} imports {imp.target} ({target_room}, "
                            f"layer {LAYERS[target_room]}) from layer {LAYERS[source_room]}: "
                            f"{where}")
    return problems


def module_cycles(found: Iterable[Import], root: Path = ROOT,
                  packages: Sequence[str] = ("robustify", "perturbations")) -> list[list[str]]:
    """Import cycles between our modules (eager and lazy imports alike), each listed once."""
    found = list(found)
    ours = {_module_name(p, root) for package in packages for p in (root / package).rglob("*.py")}
    graph: dict[str, set[str]] = defaultdict(set)
    for imp in found:
        target = imp.target
        while target and target not in ours:  # "pkg.mod.name" -> the module "pkg.mod"
            target = target.rpartition(".")[0]
        if target and target != imp.source:
            graph[imp.source].add(target)
            # importing pkg.sub.mod first runs pkg/__init__ and pkg/sub/__init__: a
            # dependency too, unless the importer lives inside that package already
            parent = target.rpartition(".")[0]
            while parent:
                if parent in ours and parent != imp.source and not imp.source.startswith(parent + "."):
                    graph[imp.source].add(parent)
                parent = parent.rpartition(".")[0]
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):]
                if sorted(cycle) not in [sorted(c) for c in cycles]:
                    cycles.append(cycle)
            elif nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(ours):
        if node not in state:
            walk(node)
    return cycles


def module_sizes(root: Path = ROOT, packages: Sequence[str] = ("robustify", "perturbations")
                 ) -> list[tuple[str, int]]:
    """``(file, lines)`` for every module, largest first."""
    sizes = [(str(p.relative_to(root)), len(p.read_text(encoding="utf-8").splitlines()))
             for package in packages for p in (root / package).rglob("*.py")]
    return sorted(sizes, key=lambda s: (-s[1], s[0]))


def _print_graph(out=sys.stdout) -> int:
    found = imports()
    sizes = Counter()
    for path, lines in module_sizes():
        sizes[room_of(_module_name(ROOT / path, ROOT))] += lines
    print("room                     layer  lines", file=out)
    for room, layer in sorted(LAYERS.items(), key=lambda kv: (kv[1], kv[0])):
        print(f"  {room:<24} {layer:>3} {sizes[room]:>6}", file=out)
    edges = Counter((room_of(i.source), room_of(i.target)) for i in found
                    if room_of(i.target) and room_of(i.source) != room_of(i.target))
    print("\nimports between rooms (importer -> imported: import statements)", file=out)
    for (a, b), n in sorted(edges.items(), key=lambda kv: (-LAYERS[kv[0][0]], kv[0])):
        print(f"  {a} -> {b}: {n}", file=out)
    problems = violations(found) + [" -> ".join(c + c[:1]) + ": cycle"
                                    for c in module_cycles(found)]
    print(f"\n{len(problems)} rule violation(s)", file=out)
    for line in problems:
        print(f"  {line}", file=out)
    return 1 if problems else 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m robustify.dev graph|sizes``."""
    parser = argparse.ArgumentParser(prog="python -m robustify.dev",
                                     description="Module sizes and the import graph.")
    parser.add_argument("view", choices=("graph", "sizes"))
    args = parser.parse_args(argv)
    try:
        if args.view == "sizes":
            for path, lines in module_sizes():
                print(f"{lines:>6}  {path}")
            return 0
        return _print_graph()
    except BrokenPipeError:  # `| head`
        from robustify.atomic import quiet_broken_pipe

        return quiet_broken_pipe()


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
