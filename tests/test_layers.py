"""The package's layers: no import cycles, imports point down, the runtime never reaches the offline wings or the
front ends, nothing imports ``facecast.cli``, and ``facecast --help`` imports no command module.

Imports are read from the source with :mod:`ast` (lazy imports inside functions count too; ``TYPE_CHECKING`` blocks
do not). ``from package import name`` is an import of ``package.name`` when that is a module.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "facecast"

# Lowest first; a module may import only from its own layer or those below it.
LAYERS: list[tuple[str, ...]] = [
    ("constants", "arkit_names", "timing", "fileio", "audio_av", "audio", "pack", "pack_checks", "pack_v3", "emotion"),
    ("network", "infer"),
    ("face", "animation"),
    ("models", "characters"),
    ("model", "__init__"),
    ("export",),
    ("batch", "server", "web", "train", "synth", "evaluation"),
    ("cli", "__main__"),
]
RUNTIME = {name for layer in LAYERS[:6] for name in layer}
"""Everything below the front ends and the offline wings."""
WINGS_AND_FRONT_ENDS = {"train", "synth", "evaluation", "server", "web", "cli", "batch"}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(test)


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    skip = {id(n) for node in ast.walk(tree) if _is_type_checking(node) for n in ast.walk(node)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                target = f"{base}.{alias.name}"
                if target in modules:
                    found.add(target)
                elif base in modules:
                    found.add(base)
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    for i, layer in enumerate(LAYERS):
        if top in layer:
            return i
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS")


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_every_module_has_a_layer():
    for module in import_graph():
        _layer(module)


def test_no_import_cycles():
    assert _cycles(import_graph()) == []


def test_imports_point_down():
    upward = [f"{a} -> {b}" for a, targets in import_graph().items() for b in targets if _layer(b) > _layer(a)]
    assert upward == []


def test_runtime_never_imports_wings_or_front_ends():
    bad = []
    for a, targets in import_graph().items():
        top = a.split(".")[1] if "." in a else "__init__"
        if top in RUNTIME:
            bad += [f"{a} -> {b}" for b in targets if b.split(".")[1] in WINGS_AND_FRONT_ENDS]
    assert bad == []


def test_nothing_imports_the_cli():
    allowed = ("facecast.cli", "facecast.__main__")
    bad = [f"{a} -> {b}" for a, targets in import_graph().items() for b in targets
           if b.startswith("facecast.cli") and not a.startswith(allowed)]  # fmt: skip
    assert bad == []


def test_the_checker_sees_a_cycle_and_an_upward_import():
    graph = {"facecast.audio": {"facecast.model"}, "facecast.model": {"facecast.audio"}}
    assert _cycles(graph) == [["facecast.audio", "facecast.model"]]
    assert _layer("facecast.model") > _layer("facecast.audio")


@pytest.mark.parametrize("argv", [["--help"], ["animate", "--help"]])
def test_cli_imports_only_the_command_it_runs(argv):
    code = (
        "import sys, contextlib, io\n"
        "from facecast.cli import build_parser\n"
        f"with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        f"    build_parser({argv!r}).parse_args({argv!r})\n"
        "print(sorted(m for m in sys.modules if m.startswith('facecast.cli.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = eval(out)
    expected = [f"facecast.cli.{argv[0]}", "facecast.cli.options"] if argv[0] != "--help" else []
    assert sorted(loaded) == sorted(expected)
