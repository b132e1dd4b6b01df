"""Mirror each training run to Weights & Biases without ever blocking or crashing training.

The local results store is the source of truth; W&B is a convenience. So this module
chooses the mode itself (wandb would otherwise prompt for a key forever on a terminal,
or raise without one), falls back to offline when online init fails, and turns every
W&B error into one warning plus no-op calls afterwards.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import netrc
import os
import re
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

MODES = ("auto", "online", "offline", "disabled")
DEFAULT_BASE_URL = "https://api.wandb.ai"
ONLINE_INIT_TIMEOUT_S = 30.0
PROBE_TIMEOUT_S = 3.0  # one TCP connect to the W&B server before going online
# Set (to the server URL) once a process found the W&B server unreachable: later runs of the
# study, and the worker processes it starts (they inherit it), go offline without waiting.
UNREACHABLE_ENV = "HARNESS_WANDB_UNREACHABLE"
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


def _base_url() -> str:
    return os.environ.get("WANDB_BASE_URL") or DEFAULT_BASE_URL


def _netrc_path() -> Path:
    env = os.environ.get("NETRC")
    return Path(env).expanduser() if env else Path("~/.netrc").expanduser()


def _stdlib_netrc_key(host: str) -> str | None:
    """Fallback when wandb's private netrc reader moves: the stdlib parser, errors -> None."""
    netloc = urlsplit(host).netloc
    if not netloc:
        return None
    try:
        creds = netrc.netrc(str(_netrc_path())).authenticators(netloc)
    except (OSError, netrc.NetrcParseError):
        return None
    return creds[2] if creds and creds[2] else None


def find_credentials() -> tuple[str | None, str]:
    """Where a W&B key would come from, without prompting or touching the network.

    Returns (source, problem): source is "WANDB_API_KEY", a netrc path, or None; problem is
    a non-empty explanation when a key was found but wandb would reject its format.
    """
    key = os.environ.get("WANDB_API_KEY", "").strip()
    if key:
        problem = _check_key_format(key)
        return "WANDB_API_KEY", problem or ""
    if os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return "WANDB_IDENTITY_TOKEN_FILE", ""
    host = _base_url()
    try:  # wandb's own reader: same host matching rules as wandb.init uses.
        from wandb.sdk.lib.wbauth import wbnetrc

        found = wbnetrc.read_netrc_auth(host=host)
    except ImportError:
        found = _stdlib_netrc_key(host)
    except Exception as exc:  # AuthenticationError: a netrc entry with a malformed key.
        return str(_netrc_path()), f"netrc entry for {host} rejected: {exc}"
    return (str(_netrc_path()), "") if found else (None, "")


def _check_key_format(key: str) -> str | None:
    try:
        from wandb.sdk.lib.wbauth import check_api_key
    except ImportError:
        return None
    try:
        return check_api_key(key)
    except Exception:
        return None


def choose_mode(requested: str) -> tuple[str, str]:
    """Resolve the requested W&B mode to online/offline/disabled plus a one-line reason.

    "auto" never leaves the choice to wandb: with no key it would raise (no TTY) or prompt
    forever (TTY). WANDB_MODE, when set to a known value, wins over auto-detection.
    """
    requested = (requested or "auto").strip().lower()
    if requested not in MODES:
        raise ValueError(f"W&B mode must be one of {', '.join(MODES)}, got {requested!r}")
    if requested != "auto":
        return requested, f"W&B mode {requested} (requested)"
    env_mode = os.environ.get("WANDB_MODE", "").strip().lower()
    if env_mode == "dryrun":
        env_mode = "offline"
    if env_mode in ("online", "offline", "disabled"):
        return env_mode, f"W&B mode {env_mode} (from WANDB_MODE)"
    source, problem = find_credentials()
    if source and not problem:
        unreachable = server_unreachable()
        if unreachable:
            return "offline", f"W&B offline: {unreachable} (upload later with `harness sync`)"
        return "online", f"W&B online (credentials from {source})"
    if problem:
        return "offline", f"W&B offline: {problem}"
    return "offline", (
        "W&B offline: no WANDB_API_KEY or netrc login found "
        "(run `wandb login`, then `wandb sync` the run folders to upload)"
    )


def server_unreachable() -> str | None:
    """Why the W&B server cannot be reached (None when it can), probed once per process.

    wandb itself retries an unreachable server for 20-100 s per run; one TCP connect tells
    the same in at most PROBE_TIMEOUT_S. The answer is remembered in UNREACHABLE_ENV so the
    study's other runs and its worker processes skip both the probe and the wait.
    """
    url = _base_url()
    if os.environ.get(UNREACHABLE_ENV) == url:
        return f"W&B server {url} unreachable (found earlier in this study)"
    why = _probe(url)
    if why:
        os.environ[UNREACHABLE_ENV] = url
    return why


@functools.lru_cache(maxsize=8)
def _probe(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.hostname:
        return None  # not a URL we understand: leave it to wandb
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=PROBE_TIMEOUT_S):
            return None
    except OSError as exc:
        return f"W&B server {url} unreachable ({type(exc).__name__}: {exc})"


def mark_unreachable(why: str) -> None:
    """An online init failed: the rest of this study goes offline at once."""
    os.environ[UNREACHABLE_ENV] = _base_url()
    log.debug("W&B marked unreachable: %s", why)


def wandb_safe_id(run_id: str) -> str:
    """The W&B run id of one of our runs: readable, deterministic and unique per run id.

    The same run id always gives the same W&B id, so a killed run resumed later continues
    the same W&B run (`resume="allow"`) instead of leaving a half run behind.
    """
    base = re.sub(r"[^A-Za-z0-9_-]+", "-", run_id).strip("-_")[:40] or "run"
    digest = hashlib.sha1(run_id.encode()).hexdigest()[:8]
    return f"{base}-{digest}"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


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
        acc = next((a for s in sources if (a := _number(summary.get(s))) is not None), None)
        if acc is not None and dst not in summary:
            out[dst] = 1.0 - acc
    return out


class WandbTracker:
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
    ) -> None:
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

        opts: dict[str, Any] = {"console": "off", "silent": True, "quiet": True}
        if mode == "online":
            opts["init_timeout"] = ONLINE_INIT_TIMEOUT_S
        return wandb.Settings(**opts)

    def _init(self, mode: str, kwargs: dict[str, Any]) -> Any:
        """wandb.init in the given mode; None (plus a warning for online) on any failure."""
        try:
            import wandb

            return wandb.init(
                mode=mode,
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
        if getattr(run, "resumed", False):  # online: the server already holds these epochs
            last = _number(dict(run.summary).get("epoch"))
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
        epoch = _number(metrics.get("epoch"))
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
        from .wandb_reader import has_exit_record

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
