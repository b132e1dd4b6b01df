"""Worker jobs through submitit: a Slurm job array (or local subprocesses) joining the queue.

The launcher only queues the study's runs and submits N jobs; it does not stay alive.
Each job is `harness worker` in a batch job: it pops runs until none is waiting or
running, so a run whose job died (pre-empted, timed out, killed) is failed by the
heartbeat and finished by another job. Running the same command again queues what is
missing and submits new jobs. The report is built later with
`harness report STUDY --storage URL`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harness.config_errors import format_validation_error
from harness.data.presence import check_data_present
from harness.errors import ConfigError, HarnessError
from harness.record.disk import atomic_write_json
from harness.record.layout import JOBS, JOBS_JSON, STUDY_JSON
from harness.study.execute import finished_ids
from harness.study.plan import expand, study_manifest
from harness.study.queue import RunQueue
from harness.study.spec import LauncherConfig, StudyConfig
from harness.study.storage import (
    check_sqlite_file,
    check_sqlite_folder,
    default_storage_url,
    mask_url,
    sqlite_path,
    studies_in,
)
from harness.train.loop import study_dir
from harness.train.preflight import check_model_sizes


@dataclass
class LaunchOutcome:
    study_dir: Path
    storage: str  # masked
    total: int
    finished: int
    queued: int
    job_ids: list[str]


def launcher_config(study: StudyConfig, flags: dict[str, Any]) -> LauncherConfig:
    """The study file's `launcher:` section with the command-line flags on top."""
    base = study.launcher.model_dump() if study.launcher else {}
    base.update({k: v for k, v in flags.items() if v is not None})
    try:
        return LauncherConfig.model_validate(base)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, "launcher (study file and flags)",
                                                  base, LauncherConfig)) from None


def storage_for_jobs(launcher: LauncherConfig, url: str | None, sdir: Path) -> str:
    """Jobs on a cluster need a server every node reaches; SQLite only for local jobs."""
    if launcher.name == "slurm" and (url is None or url.startswith("sqlite")):
        raise ConfigError("--launcher slurm: the jobs need a shared queue; pass --storage "
                          "postgresql+psycopg2://USER:PASSWORD@HOST:5432/DB (or `storage:` in "
                          "the study file)")
    return url or default_storage_url(sdir)


def check_storage(url: str) -> None:
    """The storage answers (a server storage) or can be created (SQLite), creating nothing."""
    check_sqlite_folder(url)
    check_sqlite_file(url)
    if sqlite_path(url) is None:
        studies_in(url)


def make_executor(launcher: LauncherConfig, folder: Path) -> Any:
    """A submitit executor for `launcher` (slurm_* parameters reach only the Slurm one)."""
    import submitit

    try:
        executor = submitit.AutoExecutor(folder=str(folder), cluster=launcher.name)
    except RuntimeError as err:  # submitit finds no srun: not on a Slurm machine
        raise ConfigError(f"--launcher {launcher.name}: {err} (submit from a machine where "
                          "Slurm's sbatch and srun work, e.g. a login node)") from None
    params: dict[str, Any] = {"timeout_min": launcher.timeout_min, "name": "harness-worker"}
    if launcher.name == "slurm":
        params.update(slurm_array_parallelism=launcher.array_parallelism,
                      slurm_additional_parameters=dict(launcher.additional),
                      slurm_setup=list(launcher.setup))
        optional = {"slurm_partition": launcher.partition,
                    "slurm_gpus_per_task": launcher.gpus_per_task,
                    "cpus_per_task": launcher.cpus_per_task, "mem_gb": launcher.mem_gb,
                    "slurm_account": launcher.account, "slurm_qos": launcher.qos,
                    "slurm_constraint": launcher.constraint}
        params.update({k: v for k, v in optional.items() if v is not None})
    executor.update_parameters(**params)
    return executor


def worker_job(url: str, name: str, results_dir: str, data_dir: str | None,
               threads: int | None) -> int:
    """What each batch job runs: a worker that stays until no run is waiting or running."""
    from harness.study.worker import worker_loop

    os.environ.setdefault("WANDB_SILENT", "true")
    return worker_loop(url, name, Path(results_dir), Path(data_dir) if data_dir else None,
                       threads, wait_for_running=True)


def launch_study(study: StudyConfig, launcher: LauncherConfig, *, source: str,
                 results_dir: Path, storage: str | None = None,
                 data_dir: Path | None = None) -> tuple[LaunchOutcome, list[Any]]:
    """Queue the missing runs and submit worker jobs; returns the outcome and the submitit
    jobs (their ids are printed and kept in results/<study>/jobs.json).

    Every check comes before the first write (study.json, the manifest in the storage, the
    queue): the runs' configs and data, the storage, and the launcher itself (a Slurm
    launcher where there is no Slurm used to leave a replaced manifest and queued runs)."""
    specs = expand(study, source)
    check_data_present([s.config for s in specs], data_dir)
    check_model_sizes([s.config for s in specs], source, data_dir)
    sdir = study_dir(Path(results_dir).resolve(), study.name)
    url = storage_for_jobs(launcher, storage or study.storage, sdir)
    executor = make_executor(launcher, sdir / JOBS)  # creates no folder
    check_storage(url)
    sdir.mkdir(parents=True, exist_ok=True)
    manifest = study_manifest(study, specs)
    q = RunQueue.open(url, study.name)
    q.save_manifest(manifest)
    atomic_write_json(sdir / STUDY_JSON, manifest)
    q.fail_stale()
    in_queue = q.states([(s.run_id, s.variant, s.seed) for s in specs])
    done = finished_ids(sdir, specs) | {st.run_id for st in in_queue if st.state == "finished"}
    queued = q.enqueue_missing(specs, done)
    pending = q.waiting() + q.running()
    n_jobs = min(launcher.array_parallelism, pending)
    jobs: list[Any] = []
    if n_jobs:
        threads = launcher.cpus_per_task
        args = [(url, study.name, str(sdir.parent), str(data_dir) if data_dir else None,
                 threads)] * n_jobs
        try:
            jobs = executor.map_array(worker_job, *zip(*args, strict=True))
        except Exception as err:  # sbatch refused (bad partition, account, limits)
            raise HarnessError(f"--launcher {launcher.name}: submission failed: "
                               f"{str(err).strip().splitlines()[-1][:300]}") from None
        record_jobs(sdir, launcher, [j.job_id for j in jobs])
    outcome = LaunchOutcome(sdir, mask_url(url), len(specs), len(done), queued,
                            [str(j.job_id) for j in jobs])
    return outcome, jobs


def record_jobs(sdir: Path, launcher: LauncherConfig, job_ids: list[str]) -> None:
    """Append the submitted jobs to results/<study>/jobs.json (what `harness status` lists)."""
    path = sdir / JOBS_JSON
    jobs = read_jobs(sdir)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    jobs += [{"job_id": str(j), "launcher": launcher.name, "partition": launcher.partition,
              "submitted_at": stamp} for j in job_ids]
    atomic_write_json(path, {"jobs": jobs})


def read_jobs(sdir: Path) -> list[dict[str, Any]]:
    import json

    try:
        return list(json.loads((sdir / JOBS_JSON).read_text()).get("jobs") or [])
    except (OSError, ValueError, AttributeError):
        return []
