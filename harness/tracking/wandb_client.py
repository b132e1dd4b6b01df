"""Mirror each training run to Weights & Biases without ever blocking or crashing training.

The local results store is the source of truth; W&B is a convenience. So the harness
chooses the mode itself (`wandb_mode`: wandb would otherwise prompt for a key forever on a
terminal, or raise without one); this module falls back to offline when online init fails
and turns every W&B error into one warning plus no-op calls afterwards.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sys
import time
from pathlib import Path
from typing import Any, Literal, cast

from harness.record.numbers import number
from harness.tracking.wandb_log import has_exit_record
from harness.tracking.wandb_mode import (
    choose_mode,
    find_credentials,
    mark_unreachable,
    server_unreachable,
)
from harness.tracking.wandb_packages import list_packages_once

log = logging.getLogger(__name__)

ONLINE_INIT_TIMEOUT_S = 30.0
# run.finish() can return before wandb-core has flushed the .wandb file (seen ~1 in 3 offline
# runs in 0.31.0): wait this long for the exit record so readers and `wandb sync` see it all.
FLUSH_WAIT_S = 10.0
# define_metric summaries: best-so-far instead of last value for the headline metrics.
SUMMARY_GOALS = {"val_acc": "max", "val_loss": "min"}
# Summary keys that say what they mean, from the loop's summary (best_* = the row at the
# best-val epoch): W&B's own summaries cannot pick "test accuracy at the best-val epoch",
# and `best_val_loss` beside W&B's `val_loss.min` (the minimum over epochs) would mislead.
SUMMARY_ALIASES = {
    "best_test_acc": "test_acc_at_best_val",
    "best_test_loss": "test_loss_at_best_val",
    "best_epoch": "best_val_epoch",
}



def wandb_safe_id(run_id: str) -> str:
    """The W&B run id of one of our runs: readable, deterministic and unique per run id.

    The same run id always gives the same W&B id, so a killed run resumed later continues
    the same W&B run (`resume="allow"`) instead of leaving a half run behind.
    """
    base = re.sub(r"[^A-Za-z0-9_-]+", "-", run_id).strip("-_")[:40] or "run"
    digest = hashlib.sha1(run_id.encode()).hexdigest()[:8]
    return f"{base}-{digest}"


def first_line_of(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"


def headline_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary for W&B: the loop's `best_<metric>` (the row at the best-val epoch) renamed
    `<metric>_at_best_val`, so it never reads as W&B's own best-over-epochs summaries
    (`val_loss.min`), plus test errors (1 - acc) for double-descent plots."""
    out = dict(summary)
    for src, dst in SUMMARY_ALIASES.items():
        if src in summary and dst not in summary:
            out[dst] = summary[src]
    if "best_epoch" in summary:  # a training run's summary: rename every best_* row value
        for key in [k for k in out if k.startswith("best_") and k != "best_val_epoch"]:
            value = out.pop(key)
            if key not in SUMMARY_ALIASES:
                out.setdefault(f"{key.removeprefix('best_')}_at_best_val", value)
    # Errors for double-descent plots; "final" = the final model (as the report's double
    # descent section uses), falling back to the last epoch's row.
    for sources, dst in ((("best_test_acc",), "test_error_at_best_val"),
                         (("final_test_acc", "last_test_acc"), "test_error_final"),
                         (("final_train_eval_acc", "last_train_eval_acc"), "train_error_final")):
        acc = next((a for s in sources if (a := number(summary.get(s))) is not None), None)
        if acc is not None and dst not in summary:
            out[dst] = 1.0 - acc
    return out


class WandbRun:
    """One W&B run per training run; every failure is a warning, never an exception."""

    def __init__(
        self,
        *,
        mode: str,
        project: str,
        entity: str | None,
        group: str,
        job_type: str,
        name: str,
        tags: list[str],
        config: dict,
        run_id: str,
        root: Path,
        epoch_metrics: bool = True,
        notes: str | None = None,
        console: bool = False,
        fresh: bool = False,
    ) -> None:
        """Open the run in `mode` (auto: chosen by choose_mode), or note why not and go on.
        Why long: each way W&B can fail to start (no folder, no key, no server, an id in
        use) is handled here in order, so the training run never stops for W&B."""
        if mode in ("online", "offline", "disabled"):
            self.mode, reason = mode, f"W&B mode {mode} (requested)"
        else:
            self.mode, reason = choose_mode(mode)
        self.failed = False
        self.info: dict[str, Any] = {"mode": self.mode, "requested_mode": mode, "reason": reason}
        self._run: Any = None
        self._run_dir: Path | None = None
        self._warned = False
        self._epoch_metrics = epoch_metrics  # False: a run without epochs (the study run).
        self._console = console  # capture stdout/stderr into the run's Logs tab
        # This attempt trains from epoch 1 (nothing restored): what W&B already holds under
        # the id is an earlier attempt's (a forced rerun), not epochs to skip.
        self._fresh = fresh
        self.logged_epoch = 0  # the last epoch W&B holds (a resumed online run: the server's)
        if self.mode == "disabled":
            return  # wandb is not even imported: nothing written, no helper process.
        self._root = Path(root)
        try:
            # wandb falls back to the system temp dir when dir is missing or unwritable, and
            # infers the git root before creating it: create it ourselves, fail if we cannot.
            self._root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._fail(f"cannot create W&B folder {self._root}: {exc}")
            return
        kwargs: dict[str, Any] = {
            "project": project,
            "entity": entity,
            "group": group,
            "job_type": job_type,
            "name": name,
            "tags": list(tags),
            "config": config,
            "notes": notes or None,
            "id": wandb_safe_id(run_id),
            "resume": "allow",  # a resumed run continues its W&B run
        }
        self.info["harness_run_id"] = run_id
        self.requested_online = self.mode == "online"
        if self.mode == "online":
            source, problem = find_credentials()
            why = problem or ("no W&B credentials found" if source is None
                              else server_unreachable())
            if why:
                # Online init without a usable key would prompt (TTY) or raise, and without
                # a reachable server it would wait: skip it.
                self._warn_fallback(why)
                self.mode = "offline"
            else:
                self._run = self._init("online", kwargs)
                if self._run is not None and fresh:
                    self._run = self._rewind(kwargs)
                if self._run is None:
                    self.mode = "offline"
        if self._run is None and self.mode == "offline":
            self._run = self._init("offline", kwargs)
            if self._run is None and (self.requested_online
                                      or "in use" in str(self.info.get("error", ""))):
                # a timed-out online init, or another run of this process still open under
                # the same id, leaves the id "in use" in wandb-core
                self._run = self._init("offline", {**kwargs, "id": f"{kwargs['id']}-offline"})
            if self._run is None:
                self._fail("W&B offline init failed; continuing without W&B")
                return
        self.info["mode"] = self.mode
        try:
            self._setup_run()
        except Exception as exc:
            self._fail(f"W&B setup failed: {exc!r}")

    # -- internals ---------------------------------------------------------------------

    def _settings(self, mode: str) -> Any:
        import wandb

        # "wrap": what the process prints while the run is open goes to its Logs tab (one
        # capture per run, also with several runs per process: reinit="create_new")
        opts: dict[str, Any] = {"console": "wrap" if self._console else "off",
                                "silent": True, "quiet": True}
        if mode == "online":
            opts["init_timeout"] = ONLINE_INIT_TIMEOUT_S
        return wandb.Settings(**opts)

    def _init(self, mode: str, kwargs: dict[str, Any]) -> Any:
        """wandb.init in the given mode; None (plus a warning for online) on any failure."""
        try:
            import wandb

            skip_unstaged_launch_inputs()
            list_packages_once()
            return wandb.init(
                mode=cast(InitMode, mode),  # online | offline | disabled (choose_mode)
                dir=str(self._root),
                reinit="create_new",  # several trackers per process (Optuna trials).
                settings=self._settings(mode),
                **kwargs,
            )
        except Exception as exc:  # CommError, UsageError, AuthenticationError, timeouts.
            if mode == "online":
                mark_unreachable(f"{type(exc).__name__}: {exc}")
                self._warn_fallback(f"{type(exc).__name__}: {exc}")
            else:
                log.debug("wandb offline init failed", exc_info=True)
                self.info["error"] = f"{type(exc).__name__}: {exc}"
            return None

    def _rewind(self, kwargs: dict[str, Any]) -> Any:
        """A fresh attempt whose W&B run holds an earlier attempt's epochs: rewind that run's
        history to its start (W&B's `resume_from`, beta) so this attempt's epochs replace
        them. Where W&B refuses, continue the run: every epoch is still logged (after the
        earlier ones), never skipped."""
        run = self._run
        held = number(dict(run.summary).get("epoch")) if getattr(run, "resumed", False) else 0
        if not held:
            return run
        wid = kwargs["id"]
        try:
            import wandb

            run.finish(exit_code=0)  # the id must be free in this process to open it again
            opts = {k: v for k, v in kwargs.items() if k not in ("id", "resume")}
            rewound = wandb.init(mode="online", dir=str(self._root), reinit="create_new",
                                 settings=self._settings("online"),
                                 resume_from=f"{wid}?_step=0", **opts)
        except Exception as exc:
            log.warning("W&B run %s holds %d epochs of an earlier attempt and could not be "
                        "rewound (%s): this attempt's epochs follow them", wid, held,
                        first_line_of(exc))
            self.info["rewind_error"] = first_line_of(exc)
            return self._init("online", kwargs)
        self.info["rewound_epochs"] = int(held)
        return rewound

    def _warn_fallback(self, why: str) -> None:
        first_line = (why.strip().splitlines() or [""])[0]
        log.warning(
            "W&B online init failed (%s); logging offline instead, upload later with `wandb sync`",
            first_line,
        )

    def _setup_run(self) -> None:
        run = self._run
        if self._epoch_metrics:
            run.define_metric("epoch")
            run.define_metric("*", step_metric="epoch")
            # A metric defined by name does not inherit the glob's step_metric: repeat it.
            for metric, goal in SUMMARY_GOALS.items():
                run.define_metric(metric, step_metric="epoch", summary=goal)
        if getattr(run, "resumed", False) and not self._fresh:
            # online, continuing after a checkpoint: the server already holds these epochs
            last = number(dict(run.summary).get("epoch"))
            self.logged_epoch = int(last) if last is not None else 0
        sync_dir = getattr(run.settings, "sync_dir", None)
        self._run_dir = Path(sync_dir) if sync_dir else None
        self.info.update(
            {
                "id": run.id,
                "path": "/".join(p for p in (run.entity, run.project, run.id) if p),
                "dir": str(self._run_dir) if self._run_dir else None,
            }
        )
        if self.mode == "online":
            self.info["url"] = getattr(run, "url", None)
        elif self._run_dir is not None:
            self.info["sync_command"] = f"wandb sync {self._run_dir}"

    def _fail(self, message: str) -> None:
        """Remember the failure and warn once; later calls become no-ops."""
        self.failed = True
        self.info.setdefault("error", message)
        if not self._warned:
            self._warned = True
            log.warning("%s; W&B logging disabled for this run", message)

    @property
    def _active(self) -> bool:
        return self._run is not None and not self.failed

    # -- public API ----------------------------------------------------------------------

    @property
    def run_dir(self) -> Path | None:
        """The offline-run-* (or run-*) folder holding the .wandb file, for `wandb sync`."""
        return self._run_dir

    def log_epoch(self, metrics: dict[str, float]) -> None:
        """Log one row; "epoch" inside it is the x-axis (define_metric), so no step= needed.

        Rows of epochs W&B already holds are skipped, so a resumed run never logs one twice.
        """
        epoch = number(metrics.get("epoch"))
        if epoch is not None and epoch <= self.logged_epoch:
            return
        self.log(metrics)
        if epoch is not None:
            self.logged_epoch = int(epoch)

    def add_tags(self, *tags: str) -> None:
        """Tags decided during the run (`pruned`, `diverged`), kept with the ones from init."""
        if not self._active:
            return
        try:
            self._run.tags = tuple(dict.fromkeys([*self._run.tags, *tags]))
        except Exception as exc:
            self._fail(f"wandb tags update failed: {exc!r}")

    def log(self, data: dict[str, Any]) -> None:
        """Log any values (tables, images, charts included) as one history row."""
        if not self._active:
            return
        try:
            self._run.log(dict(data))
        except Exception as exc:
            self._fail(f"wandb log failed: {exc!r}")

    def log_artifact(self, name: str, kind: str, files: list[tuple[Path, str]],
                     aliases: list[str], metadata: dict[str, Any]) -> bool:
        """One artifact version of `files` (path, name inside the artifact); False (and a
        warning, logging goes on) when W&B refuses it."""
        if not self._active:
            return False
        try:
            import wandb

            artifact = wandb.Artifact(name, type=kind, metadata=metadata)
            for path, inside in files:
                artifact.add_file(str(path), name=inside)
            self._run.log_artifact(artifact, aliases=aliases)
        except Exception as exc:
            log.warning("W&B artifact %s not logged: %r", name, exc)
            return False
        return True

    def set_summary(self, summary: dict) -> None:
        """Write final values (flat or nested) into the run summary, plus clear headline keys
        (`test_acc_at_best_val`, `test_error_at_best_val`, ...) derived from the loop's. A run
        that did not complete is tagged with how it ended (`pruned`, `diverged`, ...)."""
        if not self._active:
            return
        try:
            self._run.summary.update(headline_summary(dict(summary)))
        except Exception as exc:
            self._fail(f"wandb summary update failed: {exc!r}")
            return
        status = summary.get("status")
        if isinstance(status, str) and status not in ("completed", ""):
            self.add_tags(status)

    def finish(self, exit_code: int = 0) -> None:
        """Close the run, even after a logging failure, so what was logged is flushed."""
        run, self._run = self._run, None
        if run is None:
            return
        try:
            run.finish(exit_code=exit_code)
        except Exception as exc:
            self._fail(f"wandb finish failed: {exc!r}")
            return
        self._wait_for_flush()

    def _wait_for_flush(self, timeout_s: float = FLUSH_WAIT_S) -> bool:
        """Poll until the .wandb file holds the exit record; False (debug log) on timeout."""
        files = sorted(self._run_dir.glob("run-*.wandb")) if self._run_dir else []
        if not files:
            return False
        deadline = time.monotonic() + timeout_s
        delay = 0.01
        while True:
            if has_exit_record(files[0]):
                return True
            if time.monotonic() >= deadline:
                log.debug("W&B log %s not flushed after %.0f s", files[0], timeout_s)
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


InitMode = Literal["online", "offline", "disabled"]  # what wandb.init is given here
LAUNCH_INPUTS = "wandb.sdk.launch.inputs.internal"


def skip_unstaged_launch_inputs() -> None:
    """Every wandb.init imports W&B Launch's input staging (about 1.4 s of CPU per process,
    on the path to a study's first step) only to apply the inputs staged in this process.
    Inputs are staged through that module alone, so while it is not imported there is none
    to apply: the check then skips the import. Once it is imported, wandb's own step runs."""
    try:
        from wandb.sdk.wandb_run import Run
    except ImportError:
        return
    apply_inputs = getattr(Run, "_detect_and_apply_job_inputs", None)
    if apply_inputs is None or getattr(apply_inputs, "skips_unstaged", False):
        return

    def apply_staged_inputs(run: Any) -> None:
        if LAUNCH_INPUTS in sys.modules:
            apply_inputs(run)

    # a marker on the replacement function, then the patch of wandb's method (a function of
    # the run in place of a method: the same call)
    apply_staged_inputs.skips_unstaged = True  # type: ignore[attr-defined]  # see above
    Run._detect_and_apply_job_inputs = apply_staged_inputs  # type: ignore[method-assign,assignment]  # noqa: E501
