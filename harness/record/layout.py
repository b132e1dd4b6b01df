"""Where a study lives on disk: every file and folder name of results/<study>/, one constant
each. The writers (the local store, the queue's import of remote runs, the training loop,
the worker, the report) and the readers (the study record, the W&B study run, the API)
name a file only through these.

    results/<study>/
      study.json  queue.db  jobs.json  jobs/  confirm.json  timing.json  tuning.json
      claims.json  report.html  report.md  summary.csv  runs.csv  figures/  wandb/
      artifacts/  search/<study>/
      runs/<variant>-s<seed>-<run id>/
        config.json  env.json  metrics.csv  summary.json  failure.json  model.pt
        checkpoint.pt  test_predictions.pt  test_probs.npy  test_labels.npy
"""

from __future__ import annotations

import re
from pathlib import Path

# ----------------------------------------------------------------------------- a study folder
STUDY_JSON = "study.json"  # the expanded study: design, variants, seeds, the planned run ids
QUEUE_DB = "queue.db"  # the run queue (Optuna SQLite storage); a tuning study's search too
STUDY_LOCK = ".study.lock"  # held by the one coordinator of the study
POP_LOCK_SUFFIX = ".pop-lock"  # beside a SQLite queue: held while a worker takes a trial
RUNS = "runs"  # one folder per run
SEARCH = "search"  # search/<study>/runs/: a tuning study's trial runs
JOBS_JSON = "jobs.json"  # worker jobs submitted with --launcher
JOBS = "jobs"  # submitit's sbatch scripts, pickles and logs
CONFIRM_JSON = "confirm.json"  # claims' confirmation rounds and decisions
TIMING_JSON = "timing.json"  # the study's measured wall time (the studies table)
TUNING_JSON = "tuning.json"  # a tuning study's search summary (tuning.md beside it)
TUNING_MD = "tuning.md"
CLAIMS_JSON = "claims.json"  # the claim verdicts with their numbers
REPORT_HTML = "report.html"
REPORT_MD = "report.md"
SUMMARY_CSV = "summary.csv"  # one row per variant
RUNS_CSV = "runs.csv"  # one row per run
FIGURES = "figures"
WANDB = "wandb"  # W&B's own folder (offline runs)
ARTIFACTS = "artifacts"  # the queue's Optuna artifact store: queued runs' result files
INDEX_HTML = "index.html"  # results/index.html: every study

# ----------------------------------------------------------------------------- a run folder
CONFIG = "config.json"  # the resolved config and its run id
ENV = "env.json"  # versions, git commit, device
METRICS = "metrics.csv"  # one row per epoch
SUMMARY = "summary.json"  # written last: the run has ended (its status says how)
FAILURE = "failure.json"  # why a run did not finish, from the worker that gave up on it
MODEL = "model.pt"  # the final evaluated weights
CHECKPOINT = "checkpoint.pt"  # resume state, only while the run is unfinished
TEST_PREDICTIONS = "test_predictions.pt"  # int16 predicted test labels
TEST_PROBS = "test_probs.npy"  # float16 (N, K) test-set class probabilities
TEST_LABELS = "test_labels.npy"  # int16 (N,) the test labels they are scored against
RUN_LOCK = ".lock"  # held by the worker training the run

RUN_ID_SUFFIX = re.compile(r"-([0-9a-f]{12})$")  # a run folder's name ends in its run id


def slug(text: str) -> str:
    """A name safe in a path: anything but letters, digits and `_.=+-` becomes `_`."""
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", text).strip("_")[:80] or "run"


def run_folder_name(variant: str, seed: int, run_id: str) -> str:
    return f"{slug(variant)}-s{seed}-{run_id}"


def runs_dir(study_dir: Path | str) -> Path:
    return Path(study_dir) / RUNS


def run_folders(study_dir: Path | str) -> list[Path]:
    """Every folder under runs/, sorted by name (whether or not it holds a run yet)."""
    runs = runs_dir(study_dir)
    return [p for p in sorted(runs.iterdir()) if p.is_dir()] if runs.is_dir() else []


def folder_of_run(study_dir: Path | str, run_id: str) -> Path | None:
    """The folder that carries `run_id`, whatever variant it was named after."""
    runs = runs_dir(study_dir)
    found = sorted(runs.glob(f"*-{run_id}")) if runs.is_dir() else []
    return found[0] if found else None
