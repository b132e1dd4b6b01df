"""harness: an ablation harness for regularization in deep learning.

The Python API (harness/api.py) is exported lazily, so `import harness` loads no torch:
`harness.run(config)`, `harness.ablation(study, workers=2)`, `harness.load_study(folder)`.
"""

from __future__ import annotations

from typing import Any

from harness.version import __version__

__all__ = ["__version__", "ablation", "load_study", "run"]
API = ("ablation", "load_study", "run")


def __getattr__(name: str) -> Any:
    if name in API:
        from harness import api

        return getattr(api, name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
