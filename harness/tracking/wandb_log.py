"""The product's one look inside an offline W&B run log (run-*.wandb): has wandb-core
written the exit record yet? (`finish()` can return before it.)

wandb 0.31 no longer ships a Python reader for the file (wandb-core writes it), so this
parses the format directly: a 7-byte header (":W&B", uint16 magic 0xBEE1, version 0) then
32 KiB blocks of LevelDB-style records, each with a 7-byte header (crc32 of type byte +
payload, uint16 length, uint8 type FULL/FIRST/MIDDLE/LAST); the payloads are
wandb_internal_pb2.Record messages. The full reader the tests use is tests/wandb_offline.py.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

HEADER_IDENT = b":W&B"
HEADER_MAGIC = 0xBEE1
HEADER_VERSION = 0
HEADER_LEN = 7
BLOCK_LEN = 32 * 1024
RECORD_HEADER_LEN = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


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


def has_exit_record(log_file: Path) -> bool:
    """Whether wandb-core has written the run's exit record (finish() can return before it)."""
    from wandb.proto import wandb_internal_pb2 as pb

    try:
        payloads, _ = split_records(Path(log_file).read_bytes())
    except (OSError, ValueError):
        return False
    for payload in reversed(payloads):
        record = pb.Record()  # type: ignore[attr-defined]  # generated at import: no stubs
        try:
            record.ParseFromString(payload)
        except Exception:
            continue
        if record.WhichOneof("record_type") == "exit":
            return True
    return False
