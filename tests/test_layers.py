"""Layers that only point down: no module of harness imports a module of a higher layer.

Every import counts, function-level ones included (read with ast, nothing is imported).
A module may import its own layer and the layers before it:

  layer                         modules
  0 foundation                  version, errors, config_errors, yaml_load, plugins,
                                registry, console, failures, numerics
  1 data, models                harness.data, harness.models
  2 config                      harness.config (run config: validates names against 1)
  3 regularizers                harness.regularizers
  4 record, per-run tracking    harness.record (the one reader of a study folder),
                                tracking.store, tracking.protocol (the Tracker protocol),
                                tracking.wandb_tracker, wandb_mode, wandb_log, wandb_run
                                (W&B per run)
  5 train                       harness.train (the loop talks to a Tracker, never to W&B)
  6 study                       harness.study (plan, queue, workers, tuning)
  7 report, study-level W&B     harness.report, tracking.wandb_study / wandb_study_run /
                                wandb_report / wandb_sync (read the record)
  8 entry points                harness (the package face: re-exports the API lazily),
                                harness.api, harness.cli

A module belongs to the layer of the longest prefix that names it.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "harness"

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("harness.version", "harness.errors", "harness.config_errors", "harness.dotted",
                    "harness.yaml_load", "harness.plugins", "harness.registry", "harness.console",
                    "harness.failures", "harness.run_folder", "harness.prefetch",
                    "harness.numerics")),
    ("data, models", ("harness.data", "harness.models")),
    ("regularizers", ("harness.regularizers",)),
    ("config", ("harness.config",)),
    ("record, per-run tracking", ("harness.record", "harness.tracking.store",
                                  "harness.tracking.protocol", "harness.tracking.wandb_tracker",
                                  "harness.tracking.wandb_mode", "harness.tracking.wandb_log",
                                  "harness.tracking.wandb_packages",
                                  "harness.tracking.wandb_run", "harness.tracking.wandb_model")),
    ("train", ("harness.train",)),
    ("study", ("harness.study",)),
    ("report, study-level tracking", ("harness.report", "harness.tracking")),
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


@pytest.mark.parametrize(("module", "layer"), [
    ("harness", "entry points"), ("harness.version", "foundation"),
    ("harness.tracking.store", "record, per-run tracking"),
    ("harness.tracking.wandb_report", "report, study-level tracking"),
    ("harness.train.loop", "train"), ("harness.cli", "entry points"),
])
def test_longest_prefix_decides_the_layer(module: str, layer: str) -> None:
    assert LAYERS[layer_of(module)][0] == layer
