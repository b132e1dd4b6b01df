"""The version of the training numerics: what a run's numbers depend on beyond its config.

A run id is a hash of the run's config and this version (harness/config.py), so a code
change that alters the numbers a config trains to also changes the ids: a study resumed
after such an upgrade trains its runs anew instead of averaging runs of two code versions
under one id. Runs saved before versioning carry no version (read as 1) and keep their ids.

Bump NUMERICS_VERSION when a change alters what a fixed config trains to (initialisation,
data order, augmentation draws, a regularizer's maths, a model's layers, the optimizer),
and regenerate the golden numbers (`python tests/golden_numerics.py --write`); the test
tests/train/test_numerics.py trains fixed small runs and fails, saying so, when their numbers
move while the version stays. Changes that only rename, log or speed up keep the version.

History:
  1  runs saved before numerics were versioned (no version in config.json)
  2  2026-12: ViT pos_emb/cls_token left out of weight decay; EMA copies BatchNorm's
     num_batches_tracked (numbers of runs trained since the 2026-11-30 example also moved)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

NUMERICS_VERSION = 2
UNVERSIONED = 1  # what a saved config without a version was trained by


def numerics_of(saved: Mapping[str, Any]) -> int:
    """The numerics version a saved config.json was trained by (1: saved before versioning)."""
    value = saved.get("numerics", UNVERSIONED)
    return value if isinstance(value, int) and not isinstance(value, bool) else UNVERSIONED
