"""Tests read offline W&B runs back without network: `read_offline_run(RUN_DIR)`.

wandb 0.31 no longer ships the Python DataStore reader (wandb.sdk.internal.datastore is
gone; wandb-core writes the file), so this parses the format directly: a 7-byte header
(":W&B", uint16 magic 0xBEE1, version 0) then 32 KiB blocks of LevelDB-style records,
each with a 7-byte header (crc32 of type byte + payload, uint16 length, uint8 type
FULL/FIRST/MIDDLE/LAST); the payloads are wandb_internal_pb2.Record messages. The record
splitting is the product's (harness.tracking.wandb_log); this decodes what tests compare.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.tracking.wandb_log import split_records

SUMMARY_FLAGS = ("min", "max", "mean", "best", "last", "none", "copy", "first")


@dataclass
class OfflineRun:
    """What an offline run recorded, as plain Python values."""

    path: Path
    run_id: str = ""
    project: str = ""
    entity: str = ""
    name: str = ""
    group: str = ""
    job_type: str = ""
    notes: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    metric_definitions: list[dict[str, Any]] = field(default_factory=list)
    exit_code: int | None = None
    complete: bool = False  # an exit record was read: the run finished cleanly.
    truncated: bool = False  # the file ended mid-record (a killed process).


def _loads(text: str) -> Any:
    return json.loads(text) if text else None


def _key_path(item: Any) -> list[str]:
    return [item.key] if item.key else list(item.nested_key)


def _set_path(target: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        nxt = target.get(part)
        if not isinstance(nxt, dict):
            nxt = target[part] = {}
        target = nxt
    target[path[-1]] = value


def _remove_path(target: dict[str, Any], path: list[str]) -> None:
    for part in path[:-1]:
        target = target.get(part)
        if not isinstance(target, dict):
            return
    target.pop(path[-1], None)


def _history_value(item: Any) -> Any:
    """Typed oneof first (newer writers), value_json otherwise (what 0.31 writes)."""
    kind = item.WhichOneof("value")
    if kind is None:
        return _loads(item.value_json)
    if kind == "none":
        return None
    if kind == "json":
        return _loads(item.json)
    return getattr(item, kind)


def _apply_updates(target: dict[str, Any], record: Any) -> None:
    for item in record.update:
        path = _key_path(item)
        if path:
            _set_path(target, path, _loads(item.value_json))
    for item in record.remove:
        path = _key_path(item)
        if path:
            _remove_path(target, path)


def _metric_definition(metric: Any) -> dict[str, Any]:
    summary = [f for f in SUMMARY_FLAGS if getattr(metric.summary, f, False)]
    goal = {1: "minimize", 2: "maximize"}.get(metric.goal)
    return {
        "name": metric.name or metric.glob_name,
        "glob": bool(metric.glob_name),
        "step_metric": metric.step_metric or None,
        "summary": summary,
        "goal": goal,
        "hidden": metric.options.hidden,
    }


def read_offline_run(run_dir: Path) -> OfflineRun:
    """Parse the run-*.wandb file in run_dir (or the .wandb file itself) into an OfflineRun."""
    from wandb.proto import wandb_internal_pb2 as pb

    run_dir = Path(run_dir)
    if run_dir.is_file():
        log_file = run_dir
    else:
        files = sorted(run_dir.glob("run-*.wandb"))
        if not files:
            raise FileNotFoundError(f"no run-*.wandb file in {run_dir}")
        log_file = files[0]
    data = log_file.read_bytes()
    payloads, truncated = split_records(data)
    out = OfflineRun(path=log_file.parent, truncated=truncated)
    for payload in payloads:
        record = pb.Record()
        try:
            record.ParseFromString(payload)
        except Exception:
            out.truncated = True
            break
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            out.run_id, out.project, out.entity = run.run_id, run.project, run.entity
            out.name, out.group, out.job_type = run.display_name, run.run_group, run.job_type
            out.tags = list(run.tags)
            out.notes = run.notes
            _apply_updates(out.config, run.config)
        elif kind == "config":
            _apply_updates(out.config, record.config)
        elif kind == "history":
            row: dict[str, Any] = {}
            for item in record.history.item:
                path = _key_path(item)
                if path:
                    _set_path(row, path, _history_value(item))
            out.history.append(row)
        elif kind == "summary":
            _apply_updates(out.summary, record.summary)
        elif kind == "metric":
            out.metric_definitions.append(_metric_definition(record.metric))
        elif kind == "exit":
            out.exit_code = record.exit.exit_code
            out.complete = True
    out.config.pop("_wandb", None)  # wandb's own bookkeeping, not the user's config.
    out.summary.pop("_wandb", None)
    return out


def find_offline_runs(root: Path) -> list[Path]:
    """Every W&B run folder (offline-run-* or run-*) holding a .wandb file under root."""
    root = Path(root)
    found = {p.parent for p in root.rglob("run-*.wandb") if p.is_file()}
    return sorted(found)


def offline_charts(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Native W&B charts (wandb.plot.*) recorded by an offline run: key -> panel config.

    They live in config `_wandb.visualize`, which read_offline_run drops with `_wandb`.
    """
    from wandb.proto import wandb_internal_pb2 as pb

    files = sorted(Path(run_dir).glob("run-*.wandb"))
    if not files:
        return {}
    payloads, _ = split_records(files[0].read_bytes())
    charts: dict[str, dict[str, Any]] = {}
    for payload in payloads:
        record = pb.Record()
        try:
            record.ParseFromString(payload)
        except Exception:
            break
        kind = record.WhichOneof("record_type")
        updates = (record.config.update if kind == "config"
                   else record.run.config.update if kind == "run" else [])
        for item in updates:
            path = [item.key] if item.key else list(item.nested_key)
            value = json.loads(item.value_json) if item.value_json else None
            if path[:2] == ["_wandb", "visualize"] and len(path) == 3:
                charts[path[2]] = value
            elif path == ["_wandb"] and isinstance(value, dict):
                charts.update(value.get("visualize") or {})
    return charts
