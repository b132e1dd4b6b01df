"""One training run mirrored to W&B, behind the `Tracker` protocol.

`wandb_run_tracker(config, results_dir, context)` is what the callers of `train_run` pass
when the run should appear in W&B: the W&B run opens at `start` (a run already finished in
the store never opens one), carries flat config keys W&B can group and plot by (`width`,
`dropout_p`, every swept value under its dot-free label) and the study description as notes.
`context` is what a queue entry carries (so a worker on another machine logs the same as the
coordinator); without it, the study's manifest (study.json) is read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.config import RunConfig
from harness.dotted import get_dotted
from harness.record.params import param_label
from harness.record.run_dir import RunDir
from harness.record.schema import Manifest, read_manifest
from harness.tracking.wandb_client import WandbRun, choose_mode
from harness.tracking.wandb_model import BestWeights, Weights, log_model_artifacts

Row = Mapping[str, Any]
TRIAL_JOB_TYPE = "trial"  # tuning search trials (validation only): not in the comparison


class WandbTracker:
    """The Tracker protocol over one `WandbRun`, opened at `start`. Never raises. With
    `models` (the run folder and the best-epoch rule), a finished run's weights become model
    artifacts (harness/tracking/wandb_model.py)."""

    def __init__(self, open_run: Callable[[bool], WandbRun],
                 on_open: Callable[[dict[str, Any]], None] | None = None,
                 models: tuple[Path, str] | None = None) -> None:
        self._open = open_run
        self._on_open = on_open  # told where the W&B run is, as soon as it opens
        folder, select = models or (None, "val_acc")
        self._folder: Path | None = folder
        self._best = BestWeights(select)
        self._summary: dict[str, Any] = {}
        self.run: WandbRun | None = None

    def start(self, config: Row, env: Row, resumed: Sequence[Row]) -> None:
        self.run = self._open(not resumed)  # nothing restored: a fresh attempt
        if self._on_open is not None and self.run.mode != "disabled":
            self._on_open(tracker_info(self.run))
        for row in resumed:  # a resumed run: its W&B run gets the restored epochs too
            self.log_epoch(row)

    def watch(self, weights: Weights) -> None:
        """The evaluated model's weights, read when an epoch is the best so far (only when
        this run logs models)."""
        if self._folder is not None and self.run is not None and self.run.mode != "disabled":
            self._best.weights = weights

    def log_epoch(self, row: Row) -> None:
        if self.run is not None:
            self.run.log_epoch(dict(row))
            self._best.see(row)

    def summary_entries(self) -> dict[str, Any]:
        return {"wandb": tracker_info(self.run)} if self.run is not None else {}

    def log_summary(self, summary: Row) -> None:
        if self.run is not None:  # also tags the run with how it ended (pruned, failed)
            self._summary = dict(summary)
            self.run.set_summary(dict(summary))

    def finish(self) -> None:
        if self.run is not None:
            if self._folder is not None and self.run.mode != "disabled":
                log_model_artifacts(self.run, self._folder, self._best, self._summary)
            self.run.finish()

    def fail(self, status: str) -> None:
        if self.run is not None:
            self.run.finish(exit_code=0 if status == "pruned" else 1)  # pruned: decided


def wandb_run_tracker(config: RunConfig, results_dir: str | Path,
                      context: Mapping[str, Any] | None = None,
                      on_open: Callable[[dict[str, Any]], None] | None = None
                      ) -> WandbTracker:
    """The run's W&B tracker (files under results/<study>/wandb). `context`: `swept` (dotted
    key -> value), `notes`, `tags`, `job_type` and extra flat `config`. `on_open` gets
    `tracker_info` once the W&B run is open (a queue links its trial to it then, so a
    pruned, failed or killed run's trial points at its W&B run too)."""
    root = Path(results_dir) / config.study

    def open_run(fresh: bool) -> WandbRun:
        ctx = dict(context) if context is not None else run_context(root, config)
        mode, _ = choose_mode(config.tracking.wandb)
        run_id = config.run_id()
        flat = wandb_config(config, run_id)
        flat.update(flat_keys(config, ctx.get("swept") or {}))
        flat.update(ctx.get("config") or {})
        tags = [*config.tracking.tags, *sorted(config.regularizers), *(ctx.get("tags") or [])]
        return WandbRun(mode=mode, console=config.tracking.console, fresh=fresh,
                            project=config.tracking.project,
                            entity=config.tracking.entity, group=config.study,
                            job_type=ctx.get("job_type") or config.variant,
                            name=f"{config.variant}-s{config.seed}",
                            tags=list(dict.fromkeys(t[:64] for t in tags)), config=flat,
                            run_id=run_id, root=root, notes=ctx.get("notes"))

    folder = RunDir.for_run(root, config.variant, config.seed, config.run_id()).path
    models = (folder, config.train.select) if config.tracking.log_model else None
    return WandbTracker(open_run, on_open, models)


def tracker_info(tracker: Any) -> dict[str, Any]:
    """Where the run's W&B run is: mode, id, entity/project/id path, URL (online) or folder."""
    run_dir = getattr(tracker, "run_dir", None)
    info = getattr(tracker, "info", None) or {}
    return {"mode": getattr(tracker, "mode", None), "failed": getattr(tracker, "failed", False),
            "run_dir": str(run_dir) if run_dir else None, "id": info.get("id"),
            "path": info.get("path"), "url": info.get("url")}


# ----------------------------------------------------------------------------- flat keys


def wandb_config(config: RunConfig, run_id: str) -> dict[str, Any]:
    """Nested config plus flat keys (`width`, `dropout_p`, ...) for W&B's grouping panels.

    Flat keys never hold a dot: W&B reads `dropout.p` as the field `p` inside `dropout`."""
    nested = config.model_dump(mode="json", exclude={"tracking"})
    flat: dict[str, Any] = {"run_id": run_id, "study": config.study, "variant": config.variant,
                            "seed": config.seed, "dataset": config.data.name,
                            "model_name": config.model.name, "width": config.model.width,
                            "label_noise": config.data.label_noise,
                            "train_size": config.data.train_size}
    for name, params in config.regularizers.items():
        for k, v in (params or {}).items():
            if isinstance(v, (int, float, str, bool)):
                flat[param_label(f"regularizers.{name}.{k}").wandb] = v
        flat[name] = True
    return {**nested, **flat}


def flat_keys(config: Any, swept: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Flat W&B config keys beyond `wandb_config`'s: the optimizer's headline knobs (lr,
    weight_decay, batch_size, epochs, depth) and every swept value under its W&B-safe
    label (`dropout_p`, `width`, ...; record/params.py). Grid axes whose values are whole
    sections (a label -> mapping) are written as JSON."""
    cfg = config_dict(config)
    out: dict[str, Any] = {}
    for key in ("optim.lr", "optim.weight_decay", "train.batch_size", "train.epochs",
                "model.depth"):
        value = get_dotted(cfg, key)
        if value is not None and is_scalar(value):
            out[param_label(key).wandb] = value
    for key, value in (swept or {}).items():
        if is_scalar(value):
            out[param_label(key).wandb] = value
        elif isinstance(value, Mapping):
            out[param_label(key).wandb] = json.dumps(value, sort_keys=True)
    return out


def variant_params(manifest: Manifest | None, variant: str) -> dict[str, Any]:
    """Dotted key -> value of every swept parameter for one variant, as the plan recorded
    it in study.json (record/params.py); {} for ad-hoc runs and designs that sweep nothing."""
    mine = next((v for v in manifest.variants if v.name == variant), None) if manifest else None
    return dict(mine.params) if mine else {}


def run_context(study_dir: Path, config: Any) -> dict[str, Any]:
    """What a training run's W&B run needs from its study's manifest: the swept values and
    the study description (as W&B notes). A queued run carries the same in its queue entry
    (`RunSpec.wandb_context`), so a remote worker needs no study.json."""
    manifest = read_manifest(study_dir)
    return {"swept": variant_params(manifest, str(config_dict(config).get("variant", ""))),
            "notes": (manifest.description if manifest else "") or None}


def config_dict(config: Any) -> dict[str, Any]:
    if config is None:
        return {}
    if hasattr(config, "model_dump"):
        return config.model_dump(mode="json")
    return dict(config)


def is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))
