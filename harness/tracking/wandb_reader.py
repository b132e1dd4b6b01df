"""Read an offline W&B run (the run-*.wandb transaction log) back without network.

wandb 0.31 no longer ships the Python DataStore reader (wandb.sdk.internal.datastore is
gone; wandb-core writes the file), so this parses the format directly: a 7-byte header
(":W&B", uint16 magic 0xBEE1, version 0) then 32 KiB blocks of LevelDB-style records,
each with a 7-byte header (crc32 of type byte + payload, uint16 length, uint8 type
FULL/FIRST/MIDDLE/LAST); the payloads are wandb_internal_pb2.Record messages. Used by
tests and by `harness` checks that the W&B mirror matches the local store.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HEADER_IDENT = b":W&B"
HEADER_MAGIC = 0xBEE1
HEADER_VERSION = 0
HEADER_LEN = 7
BLOCK_LEN = 32 * 1024
RECORD_HEADER_LEN = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
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


def split_records(data: bytes) -> tuple[list[bytes], bool]:
    """Return (complete record payloads, whether a truncated or corrupt tail was dropped).

    A killed process leaves a partial last record (or zero padding): stop there, keep the rest.
    """
    if len(data) < HEADER_LEN:
        raise ValueError("not a W&B transaction log: file shorter than its header")
    ident, magic, version = struct.unpack("<4sHB", data[:HEADER_LEN])
    if ident != HEADER_IDENT or magic != HEADER_MAGIC or version != HEADER_VERSION:
        raise ValueError("not a W&B transaction log (bad header)")
    payloads: list[bytes] = []
    pos = HEADER_LEN
    pending: bytearray | None = None
    while pos < len(data):
        left_in_block = BLOCK_LEN - pos % BLOCK_LEN
        if left_in_block < RECORD_HEADER_LEN:  # block trailer: zero padding.
            pos += left_in_block
            continue
        if pos + RECORD_HEADER_LEN > len(data):
            return payloads, True
        crc, length, rtype = struct.unpack("<IHB", data[pos : pos + RECORD_HEADER_LEN])
        start = pos + RECORD_HEADER_LEN
        end = start + length
        if rtype == 0 or end > len(data) or end - pos > left_in_block:
            return payloads, True  # zero-filled or cut-off tail
        payload = data[start:end]
        if zlib.crc32(bytes([rtype]) + payload) & 0xFFFFFFFF != crc:
            return payloads, True
        pos = end
        if rtype == FULL:
            pending = None
            payloads.append(payload)
        elif rtype == FIRST:
            pending = bytearray(payload)
        elif rtype == MIDDLE and pending is not None:
            pending += payload
        elif rtype == LAST and pending is not None:
            pending += payload
            payloads.append(bytes(pending))
            pending = None
        else:
            return payloads, True  # MIDDLE/LAST without FIRST or unknown type: do not guess.
    return payloads, pending is not None


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


def has_exit_record(log_file: Path) -> bool:
    """Whether wandb-core has written the run's exit record (finish() can return before it)."""
    from wandb.proto import wandb_internal_pb2 as pb

    try:
        payloads, _ = split_records(Path(log_file).read_bytes())
    except (OSError, ValueError):
        return False
    for payload in reversed(payloads):
        record = pb.Record()
        try:
            record.ParseFromString(payload)
        except Exception:
            continue
        if record.WhichOneof("record_type") == "exit":
            return True
    return False


def find_offline_runs(root: Path) -> list[Path]:
    """Every W&B run folder (offline-run-* or run-*) holding a .wandb file under root."""
    root = Path(root)
    found = {p.parent for p in root.rglob("run-*.wandb") if p.is_file()}
    return sorted(found)
