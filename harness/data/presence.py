"""Before a command writes anything: is every dataset it will train on in its data folder?

A study whose dataset files are missing used to fail every run, one after another, after
writing its study folder, its queue and a W&B run for each; this answers once, naming the
folder and the fix. Reads file names only (the `files` and `present` a loader declares).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.data.base import info_of
from harness.data.catalog import files_status
from harness.data.load import resolve_data_dir
from harness.errors import DataError


def check_data_present(configs: Iterable[Any], data_dir: str | Path | None = None) -> None:
    """DataError (one line) for the first dataset whose files are not where its runs will
    look; a dataset the config asks to download (data.download) is fetched by its run."""
    seen: set[str] = set()
    for config in configs:
        data = config.data
        root = resolve_data_dir(data.data_dir, None if data_dir is None else str(data_dir))
        key = json.dumps([data.name, str(root), data.download, data.kwargs], default=str)
        if key in seen:
            continue
        seen.add(key)
        info = info_of(data.name)
        if data.download and info.download:
            continue
        if info.present is not None:
            info.present(data, root)
        status, missing = files_status(data.name, root)
        if status == "missing":
            fetch = (", or set data.download: true (`harness run --download`) to fetch them"
                     if info.download else "")
            raise DataError(f"dataset {data.name}: {len(missing)} file(s) missing in {root} "
                            f"(first: {missing[0]}); pass --data-dir DIR (or set "
                            f"HARNESS_DATA_DIR) to a folder that has them{fetch}")
