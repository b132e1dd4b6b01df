"""Plug-ins from outside the repository: config-named modules and installed entry points.

Two ways in, both ending in the same registries the built-ins use:

- a config (run or study) names importable modules, `plugins: [my_project.harness_plugins]`;
  they are imported before the config's names are checked, in every process that
  validates the config (so local and remote workers see them too);
- an installed package declares entry points in the groups `harness.models`,
  `harness.datasets` or `harness.regularizers`; a registry loads its group the first time
  a name is looked up, so `import harness` stays cheap.

`HARNESS_ENTRY_POINTS=off` loads no installed plug-in (the test suite sets it, so a plug-in
a user installed cannot change what the project's own tests see).

Loading a plug-in only imports it: its `@MODELS.register(...)`, `@DATASETS.register(...)`
or `@register` decorators do the registering, exactly as in the built-in modules.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
from dataclasses import dataclass
from typing import Any

from harness.errors import ConfigError

ENTRY_POINTS_VAR = "HARNESS_ENTRY_POINTS"
GROUPS = {"model": "harness.models", "dataset": "harness.datasets",
          "regularizer": "harness.regularizers"}


@dataclass(frozen=True)
class EntryPointLoad:
    """One entry point and what loading it gave: the distribution it came from, or an error."""

    group: str
    name: str
    value: str
    dist: str
    error: str = ""


_loaded: dict[str, list[EntryPointLoad]] = {}


def import_plugins(modules: list[str] | tuple[str, ...], source: str = "plugins") -> None:
    """Import each module named in a config; a module that fails is one clear line.

    The working directory is searched last, as `python -m` would, so a `my_plugins.py`
    next to the study file works without installing it.
    """
    _search_cwd()
    for i, module in enumerate(modules):
        _import_module(module, f"{source}[{i}]")


def _import_module(module: Any, label: str) -> None:
    if not isinstance(module, str) or not module.strip():
        raise ConfigError(f"{label} = {module!r}: expected an importable module name")
    try:
        importlib.import_module(module)
    except Exception as e:  # any import-time failure of user code: one line, not a traceback
        raise ConfigError(f"{label} = {module!r}: import failed: {type(e).__name__}: {e}") from None


def _search_cwd() -> None:
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.append(cwd)


def load_entry_points(kind: str) -> list[EntryPointLoad]:
    """Load the entry points of `kind`'s group once per process; failures are recorded, not
    raised, so one broken installed package cannot stop runs that do not use it."""
    group = GROUPS[kind]
    if group in _loaded:
        return _loaded[group]
    _loaded[group] = loads = []
    for ep in installed_entry_points(kind):
        dist = getattr(getattr(ep, "dist", None), "name", "") or "?"
        try:
            ep.load()
        except Exception as e:  # a plug-in's own bug: remember it and say so where it matters
            loads.append(EntryPointLoad(group, ep.name, ep.value, dist, f"{type(e).__name__}: {e}"))
            continue
        loads.append(EntryPointLoad(group, ep.name, ep.value, dist))
    return loads


def entry_points_off() -> bool:
    return os.environ.get(ENTRY_POINTS_VAR, "").lower() in ("off", "0", "no", "false")


def installed_entry_points(kind: str) -> list[importlib.metadata.EntryPoint]:
    """The entry points of `kind`'s group that installed packages declare (none while
    HARNESS_ENTRY_POINTS=off); reading them imports nothing."""
    if entry_points_off():
        return []
    return list(importlib.metadata.entry_points(group=GROUPS[kind]))


def failed_loads(kind: str) -> list[str]:
    """One line per installed plug-in of `kind` that failed to load (loaded ones: none)."""
    return [f"plug-in {e.name!r} ({e.dist}, {e.value}) failed to load: {e.error}"
            for e in _loaded.get(GROUPS[kind], []) if e.error]


def failed_plugins_note(kind: str) -> str:
    """'; plug-in X (dist) failed to load: ...' for an unknown-name message, or ''."""
    return "".join(f"; {line}" for line in failed_loads(kind))


def plugin_source(obj: Any) -> str:
    """Where a registered object comes from: 'built-in', or its module (and the installed
    distribution whose entry point loaded it)."""
    module = getattr(obj, "__module__", "") or ""
    if module.split(".")[0] == "harness":
        return "built-in"
    dists = {e.dist for loads in _loaded.values() for e in loads
             if not e.error and e.value.split(":")[0] == module}
    return f"{module} ({', '.join(sorted(dists))})" if dists else module


def import_object(path: str, what: str) -> Any:
    """'package.module:Name' -> the object; a bad path is one line naming what failed."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"{what} = {path!r}: expected 'package.module:Name'")
    _search_cwd()
    try:
        importlib.import_module(module_name)
    except Exception as e:  # user code: one line
        raise ConfigError(f"{what} = {path!r}: importing {module_name!r} failed: "
                          f"{type(e).__name__}: {e}") from None
    obj: Any = sys.modules[module_name]
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"{what} = {path!r}: module {module_name!r} has no {attr!r}")
        obj = getattr(obj, part)
    return obj
