"""Layers that only point down: no module of harness imports a module of a higher layer.

Every import counts, function-level ones included (read with ast, nothing is imported).
A module may import its own layer and the layers before it:

  layer                         modules
  0 foundation                  version, errors, config_errors, dotted, yaml_load, plugins,
                                registry, console, failures, prefetch, numerics,
                                builtin_names and quick_check (names and ranges without the
                                registries), interrupts
  1 record, stats               harness.record (the study record: layout, run identity, the
                                run folder, the one reader), harness.stats (numbers only)
  2 data, models                harness.data, harness.models
  3 regularizers                harness.regularizers
  4 config                      harness.config (calls the regularizers' checks)
  5 tracking                    harness.tracking: per run (the Tracker protocol, W&B per run)
  6 train                       harness.train (the loop talks to a Tracker, never to W&B)
  7 study                       harness.study (plan, queue, workers, tuning)
  8 report                      harness.report (reads the record)
  9 publish                     harness.publish (the finish step, the W&B study run and
                                Report, sync)
 10 entry points                harness (the package face: re-exports the API lazily),
                                harness.api, harness.cli

Every folder of the package is one layer (a layer may hold several folders, never part of
one); the top-level modules are named one by one.
A module belongs to the layer of the longest prefix that names it.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO

ROOT = REPO / "harness"

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("harness.version", "harness.errors", "harness.config_errors", "harness.dotted",
                    "harness.yaml_load", "harness.plugins", "harness.registry", "harness.console",
                    "harness.failures", "harness.prefetch", "harness.numerics",
                    "harness.builtin_names", "harness.quick_check", "harness.interrupts")),
    ("record, stats", ("harness.record", "harness.stats")),
    ("data, models", ("harness.data", "harness.models")),
    ("regularizers", ("harness.regularizers",)),
    ("config", ("harness.config",)),
    ("tracking", ("harness.tracking",)),
    ("train", ("harness.train",)),
    ("study", ("harness.study",)),
    ("report", ("harness.report",)),
    ("publish", ("harness.publish",)),
    ("entry points", ("harness", "harness.api", "harness.cli")),
]

# Upward imports not yet removed, each with why it is still there: none left (the last, config
# reaching up for the regularizer registry, went when config moved above the regularizers).
# An entry that no longer occurs fails the test too, so the list only shrinks.
# (importer, imported)
KNOWN: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str], where: str = "anywhere") -> set[str]:
    """The harness modules `path` imports: "anywhere" in the file (functions and
    TYPE_CHECKING blocks included), those that "run" (not under TYPE_CHECKING), or those run
    "at_import" (neither in a function nor under TYPE_CHECKING). `from package import name`
    counts as importing the submodule when `name` is one."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    tree = ast.parse(path.read_text(), str(path))
    constants = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
                 and isinstance(n.value, ast.Constant) for t in n.targets
                 if isinstance(t, ast.Name)}
    for node in (ast.walk(tree) if where == "anywhere" else executed(tree, where == "run")):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:  # relative: from the package, up level-1 packages
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                found.add(sub if sub in modules else source)
        elif isinstance(node, ast.Call) and called_name(node) in DYNAMIC_IMPORTS and node.args:
            arg = node.args[0]  # importlib.import_module("harness.x") or (NAME), NAME = "..."
            value = constants.get(arg.id) if isinstance(arg, ast.Name) else \
                getattr(arg, "value", None)
            if isinstance(value, str):
                found.add(value)
    return {m for m in found if m == "harness" or m.startswith("harness.")}


DYNAMIC_IMPORTS = {"import_module", "__import__"}
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def executed(tree: ast.AST, in_functions: bool) -> Iterator[ast.AST]:
    """The nodes that can run: never the body of `if TYPE_CHECKING:`, and those in function
    bodies only with `in_functions`."""
    for child in ast.iter_child_nodes(tree):
        yield child
        if isinstance(child, ast.If) and is_type_checking(child.test):
            for other in child.orelse:
                yield other
                yield from executed(other, in_functions)
        elif in_functions or not isinstance(child, FUNCTIONS):
            yield from executed(child, in_functions)


def is_type_checking(test: ast.expr) -> bool:
    return (getattr(test, "id", None) or getattr(test, "attr", None)) == "TYPE_CHECKING"


def called_name(call: ast.Call) -> str:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")


def layer_of(module: str) -> int:
    """The layer of the longest prefix naming `module` (the bare package only names itself)."""
    best, best_len = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            named = module == prefix or (prefix != "harness" and module.startswith(prefix + "."))
            if named and len(prefix) > best_len:
                best, best_len = i, len(prefix)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__}")
    return best


def upward(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    """(importer, imported) pairs where the imported module sits in a higher layer."""
    return {(src, dst) for src, dsts in graph.items() for dst in dsts
            if layer_of(dst) > layer_of(src)}


def import_graph(where: str = "anywhere") -> dict[str, set[str]]:
    files = sorted(ROOT.rglob("*.py"))
    modules = {module_name(p) for p in files}
    return {module_name(p): imports_of(p, modules, where) for p in files}


def hidden_cycles() -> set[tuple[str, str]]:
    """(importer, imported) for each import made inside a function whose module, imported at
    module level instead, would import the importer back: an import placed to hide a cycle.
    Importing a module first runs its packages' __init__ (those not already running: the
    importer and the packages holding it), so those count as imported by it."""
    runs, at_import = import_graph("run"), import_graph("at_import")

    def reaches(start: str, goal: str) -> bool:
        holding_goal = {goal, *packages_of(goal)}  # already running when goal imports
        seen, todo = {start}, [start]
        while todo:
            node = todo.pop()
            nexts = at_import.get(node, set()) | (set(packages_of(node)) - holding_goal)
            for nxt in nexts - seen:
                if nxt == goal:
                    return True
                seen.add(nxt)
                todo.append(nxt)
        return False

    return {(src, dst) for src in runs for dst in runs[src] - at_import[src]
            if dst != src and reaches(dst, src)}


def packages_of(module: str) -> list[str]:
    """harness.a.b -> [harness.a, harness]."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]


def describe(pairs: set[tuple[str, str]]) -> str:
    return "\n".join(f"  {a} ({LAYERS[layer_of(a)][0]}) imports {b} ({LAYERS[layer_of(b)][0]})"
                     for a, b in sorted(pairs))


def test_every_module_has_a_layer() -> None:
    for module in import_graph():
        layer_of(module)


def test_no_module_imports_a_higher_layer() -> None:
    found = upward(import_graph())
    new = found - KNOWN
    assert not new, "imports that run up the layers:\n" + describe(new)
    gone = KNOWN - found
    assert not gone, "fixed, so remove from KNOWN:\n" + "\n".join(map(str, sorted(gone)))


def test_the_check_catches_an_upward_import_anywhere_in_a_module(tmp_path: Path,
                                                                 monkeypatch) -> None:
    """A function-level import of the loop from a data module is found and reported."""
    pkg = tmp_path / "harness"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "data" / "__init__.py").write_text("from . import sneaky\n")
    (pkg / "data" / "sneaky.py").write_text(
        "import torch\n\n\ndef load():\n    from harness.train.loop import train_run\n"
        "    from ..models import MODELS\n    return train_run, MODELS\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", pkg)
    graph = import_graph()
    assert graph["harness.data.sneaky"] == {"harness.train.loop", "harness.models"}
    assert graph["harness.data"] == {"harness.data.sneaky"}
    assert upward(graph) == {("harness.data.sneaky", "harness.train.loop")}


def test_no_function_level_import_hides_a_cycle() -> None:
    found = hidden_cycles()
    assert not found, "function-level imports that hide a cycle:\n" + "\n".join(
        f"  {a} imports {b} in a function; {b} imports {a} back" for a, b in sorted(found))


def test_the_check_catches_a_cycle_hidden_in_a_function(tmp_path: Path, monkeypatch) -> None:
    pkg = tmp_path / "harness"
    (pkg / "train").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "train" / "__init__.py").write_text("")
    (pkg / "train" / "a.py").write_text("def f():\n    from harness.train.b import g\n"
                                        "    return g\n")
    (pkg / "train" / "b.py").write_text("from harness.train.c import h\n\n\ndef g():\n"
                                        "    return h\n")
    (pkg / "train" / "c.py").write_text("from harness.train import a\n\nh = a\n")
    (pkg / "train" / "d.py").write_text("def lazy():\n    from harness.train import c\n"
                                        "    return c\n")  # lazy, but no cycle
    # through a package's __init__: importing report.figs runs report/__init__ -> build -> e
    (pkg / "report").mkdir()
    (pkg / "report" / "__init__.py").write_text("from harness.report import build\n")
    (pkg / "report" / "build.py").write_text("from harness.train import e\n")
    (pkg / "report" / "figs.py").write_text("")
    (pkg / "train" / "e.py").write_text("def f():\n    from harness.report import figs\n"
                                        "    return figs\n")
    # a TYPE_CHECKING import never runs: the function-level one is still checked
    (pkg / "train" / "f.py").write_text(
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from harness.train import g\n"
        "\n\ndef h():\n    from harness.train import g\n    return g\n")
    (pkg / "train" / "g.py").write_text("from harness.train import f\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", pkg)
    assert hidden_cycles() == {("harness.train.a", "harness.train.b"),
                               ("harness.train.e", "harness.report.figs"),
                               ("harness.train.f", "harness.train.g")}


def test_the_layers_are_the_folders() -> None:
    """Each sub-package is named whole in one layer; no layer names part of a folder."""
    folders = {f"harness.{p.name}" for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    named = [prefix for _, prefixes in LAYERS for prefix in prefixes]
    assert sorted(p for p in named if p in folders) == sorted(folders)
    assert len(named) == len(set(named))
    modules = {f"harness.{p.stem}" for p in ROOT.glob("*.py") if p.stem != "__init__"}
    assert [p for p in named if p != "harness" and p not in folders | modules] == []


@pytest.mark.parametrize(("module", "layer"), [
    ("harness", "entry points"), ("harness.version", "foundation"),
    ("harness.record.run_dir", "record, stats"), ("harness.tracking.protocol", "tracking"),
    ("harness.publish.wandb_report", "publish"),
    ("harness.train.loop", "train"), ("harness.cli", "entry points"),
])
def test_longest_prefix_decides_the_layer(module: str, layer: str) -> None:
    assert LAYERS[layer_of(module)][0] == layer
