"""A queued run's result files as Optuna artifacts, with pointers in its trial.

A finished run's files that a report reads (env.json, the test predictions and
probabilities) go into an Optuna FileSystemArtifactStore beside the study
(results/<study>/artifacts/), and the trial holds only pointers: Optuna's own artifact
records (optuna-dashboard lists and serves them: `optuna-dashboard STORAGE --artifact-dir
results/<study>/artifacts`) and the user attr `artifacts` = {"dir": the store's folder,
"files": {name: artifact id}}. A coordinator on another machine rebuilds the run folder
from the store when it can reach it (a shared results folder); otherwise the report lists
the files as missing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact

from harness.record.disk import atomic_write_bytes
from harness.record.layout import ARTIFACTS, ENV, TEST_LABELS, TEST_PREDICTIONS, TEST_PROBS

log = logging.getLogger(__name__)

ARTIFACT_DIR = ARTIFACTS  # below the study folder
ARTIFACTS_ATTR = "artifacts"  # trial user attr: {"dir": ..., "files": {name: artifact id}}
# Run files that travel with a finished trial (a remote worker's results are complete);
# model.pt and checkpoints stay on the worker (a report does not need them).
TRAVELLING_FILES = (ENV, TEST_PREDICTIONS, TEST_PROBS, TEST_LABELS)
MIMETYPES = {".json": "application/json"}


def upload_files(trial: optuna.trial.Trial, run_folder: Path,
                 store_dir: Path) -> dict[str, Any] | None:
    """Store the run's travelling files as artifacts of `trial`; the pointer attr's value
    (None when the run has none). A store that cannot be written is a warning, not a failed
    run: the files stay in the run folder."""
    files = [run_folder / n for n in TRAVELLING_FILES if (run_folder / n).is_file()]
    if not files:
        return None
    try:
        store_dir.mkdir(parents=True, exist_ok=True)
        store = FileSystemArtifactStore(str(store_dir))
        ids = {p.name: upload_artifact(artifact_store=store, file_path=str(p),
                                       study_or_trial=trial,
                                       mimetype=MIMETYPES.get(p.suffix,
                                                              "application/octet-stream"))
               for p in files}
    except OSError as err:
        log.warning("could not store the result files of trial %s in %s: %s", trial.number,
                    store_dir, err)
        return None
    return {"dir": str(store_dir.resolve()), "files": ids}


def fetch_files(trial: optuna.trial.FrozenTrial, run_folder: Path,
                store_dirs: Iterable[Path]) -> list[str]:
    """Write the trial's travelling files into `run_folder` from the first store that holds
    them (the given folders, then the one the trial names). Returns the names written."""
    written = []
    pointer = trial.user_attrs.get(ARTIFACTS_ATTR) or {}
    ids = {n: i for n, i in (pointer.get("files") or {}).items() if n in TRAVELLING_FILES}
    folders = [*store_dirs, *([Path(pointer["dir"])] if pointer.get("dir") else [])]
    for name, artifact_id in ids.items():
        for folder in folders:
            if (folder / artifact_id).is_file():
                with FileSystemArtifactStore(str(folder)).open_reader(artifact_id) as reader:
                    atomic_write_bytes(run_folder / name, reader.read())
                written.append(name)
                break
    return written
