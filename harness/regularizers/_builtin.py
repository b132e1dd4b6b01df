"""Imports every module of this package so each built-in regularizer registers itself.

Adding a regularizer is one new module here with an `@register` class: no list to edit.
"""

from __future__ import annotations

import importlib
import pkgutil

import harness.regularizers as _pkg

_INFRASTRUCTURE = {"base", "stack", "validate", "_builtin"}

for _info in sorted(pkgutil.iter_modules(_pkg.__path__), key=lambda m: m.name):
    if _info.name not in _INFRASTRUCTURE:
        importlib.import_module(f"{_pkg.__name__}.{_info.name}")
