"""Study folders written by hand for the report's tests: every number is the test's choice,
and every run folder passes the record's integrity checks (its config hashes to its run id,
its summary agrees with its metrics), so the report reads them as it reads a real study.

    runs = {"baseline": {s: run(0.42 + d) for s, d in enumerate(...)}, "dropout.p=0.5": ...}
    write_study(tmp / "results" / "s", runs, overrides={"dropout.p=0.5": {...}})
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from harness.config import build_run_config
from harness.numerics import NUMERICS_VERSION
from harness.record.params import swept_values
from harness.train.calibration import ECE_BINS, ece_from_bins
from harness.train.results import best_row

BASE: dict[str, Any] = {"data": {"name": "mnist1d", "train_size": 1000, "label_noise": 0.1},
                        "model": {"name": "mlp", "width": 256, "depth": 2},
                        "train": {"epochs": 8}, "tracking": {"wandb": "disabled"}}


@dataclass
class Run:
    metrics: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)  # overrides of the computed summary
    status: str = "completed"


def reliability(accuracy: float, overconfidence: float, n: int = 1000) -> dict[str, list]:
    """Bins of a model whose accuracy is `accuracy` and whose mean confidence exceeds it by
    `overconfidence` in every bin (five bins, equal counts)."""
    conf_sum = np.zeros(ECE_BINS)
    acc_sum = np.zeros(ECE_BINS)
    count = np.zeros(ECE_BINS)
    for offset in (-0.2, -0.1, 0.0, 0.1, 0.2):
        acc = min(max(accuracy + offset, 0.0), 1.0)
        conf = min(max(acc + overconfidence, 1 / 10 + 1e-3), 1.0)
        i = min(ECE_BINS - 1, max(0, math.ceil(conf * ECE_BINS) - 1))
        count[i] += n / 5
        conf_sum[i] += conf * n / 5
        acc_sum[i] += acc * n / 5
    safe = np.maximum(count, 1)
    return {"confidence": list(conf_sum / safe), "accuracy": list(acc_sum / safe),
            "count": [int(c) for c in count]}


def curve(test: float, *, epochs: int = 8, train: float = 0.99, val: float | None = None,
          val_loss_min: int = 3, val_acc_peak: int | None = None, train_loss_end: float = 0.05,
          gap_end: float = 1.5) -> pd.DataFrame:
    """Epochs 1..N: train accuracy rising to `train`, val accuracy rising to `val` (default:
    `test`) at `val_acc_peak` (default: the last epoch) then flat, test accuracy following it,
    val loss lowest at `val_loss_min` and rising by `gap_end` after it; val=None for a study
    without a validation split (no val columns)."""
    e = np.arange(1, epochs + 1, dtype=float)
    peak = val_acc_peak or epochs
    ramp = np.minimum(e, peak) / peak
    val_acc = 0.1 + ((val if val is not None else test) - 0.1) * ramp
    test_acc = 0.1 + (test - 0.1) * ramp
    train_loss = 2.3 * (train_loss_end / 2.3) ** ((e - 1) / max(1, epochs - 1))
    val_loss = 1.6 + 0.1 * np.abs(e - val_loss_min) + gap_end * np.maximum(
        0, e - val_loss_min) / max(1, epochs - val_loss_min)
    frame = pd.DataFrame({
        "epoch": e.astype(int), "train_loss": train_loss,
        "train_acc": 0.1 + (train - 0.1) * e / epochs,
        "train_eval_loss": train_loss * 0.9, "train_eval_acc": 0.1 + (train - 0.1) * e / epochs,
        "val_loss": val_loss, "val_acc": val_acc, "test_loss": val_loss + 0.05,
        "test_acc": test_acc})
    return frame


def no_val(frame: pd.DataFrame) -> pd.DataFrame:
    """The same curves as a study without a validation split records them."""
    return frame.drop(columns=["val_loss", "val_acc"])


def run(test: float, *, calibration: tuple[float, float] | None = None,
        summary: dict[str, Any] | None = None, status: str = "completed",
        validation: bool = True, **curve_kw: Any) -> Run:
    """A finished run whose last-epoch (and best-val) test accuracy is `test`; calibration =
    (accuracy, confidence - accuracy) of its final model; validation=False: no val columns."""
    frame = curve(test, **curve_kw)
    if not validation:
        frame = no_val(frame)
    extra = dict(summary or {})
    if calibration is not None:
        acc, over = calibration
        bins = reliability(acc, over)
        extra.setdefault("final_reliability", bins)
        extra.setdefault("final_ece", ece_from_bins(bins))
        extra.setdefault("final_accuracy", acc)
        extra.setdefault("final_confidence", acc + over)
        extra.setdefault("final_overconfidence", over)
        extra.setdefault("final_temperature", 1.0 + over * 5)
    return Run(frame, extra, status)


def _summary(r: Run, run_id: str, select: str) -> dict[str, Any]:
    rows = r.metrics.to_dict("records")
    s: dict[str, Any] = {"run_id": run_id, "status": r.status, "epochs_run": len(rows),
                         "params": 78_858, "flops": 157_000.0, "wall_time": 2.5}
    last = rows[-1]
    s.update({f"last_{k}": v for k, v in last.items() if k != "epoch"})
    best = best_row(rows, select) if "val_acc" in r.metrics else None
    if best is not None:
        s["best_epoch"] = best["epoch"]
        s.update({f"best_{k}": v for k, v in best.items() if k != "epoch"})
    s.update({f"final_{k}": v for k, v in last.items() if k != "epoch"})
    s.update(r.summary)
    return s


def _config(name: str, seed: int, base: dict[str, Any], overrides: dict[str, Any]):
    raw = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return build_run_config({**raw, "study": "constructed", "variant": name, "seed": seed},
                            "test")


def write_study(sdir: Path, runs: dict[str, dict[int, Run]], *,
                overrides: dict[str, dict[str, Any]] | None = None,
                swept: dict[str, dict[str, Any]] | None = None,
                base: dict[str, Any] | None = None, design: dict[str, Any] | None = None,
                claims: list[dict[str, Any]] | None = None,
                compare: dict[str, Any] | None = None, baseline: str | None = "baseline",
                description: str = "constructed") -> Path:
    """results/<name>/ with study.json and one folder per (variant, seed)."""
    base = base or BASE
    overrides = overrides or {}
    select = (base.get("train") or {}).get("select", "val_acc")
    variants = []
    for name, seeds in runs.items():
        own = (swept or {}).get(name, {})
        config = _config(name, min(seeds), base, overrides.get(name, {})).model_dump(mode="json")
        variants.append({"name": name, "overrides": overrides.get(name, {}), "swept": own,
                         "params": swept_values(design, own, name == baseline, config),
                         "is_baseline": name == baseline})
        for seed, r in seeds.items():
            cfg = _config(name, seed, base, overrides.get(name, {}))
            run_id = cfg.run_id()
            d = sdir / "runs" / f"{name}-s{seed}-{run_id}"
            d.mkdir(parents=True)
            (d / "config.json").write_text(json.dumps({  # stamped as the store stamps it
                "run_id": run_id, "numerics": NUMERICS_VERSION, **cfg.model_dump(mode="json")}))
            r.metrics.to_csv(d / "metrics.csv", index=False)
            (d / "summary.json").write_text(json.dumps(_summary(r, run_id, select)))
    meta = {"name": sdir.name, "description": description,
            "design": design or {"kind": "one_at_a_time"}, "base": base,
            "seeds": sorted({s for seeds in runs.values() for s in seeds}),
            "baseline": baseline, "variants": variants, "claims": claims or [],
            "harness_version": "test", "created_at": "2026-01-01T00:00:00"}
    if compare:
        meta["compare"] = compare
    (sdir / "study.json").write_text(json.dumps(meta))
    return sdir


TINY_PNG = bytes.fromhex(  # a 1 x 1 white PNG
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8ffff3f0005fe02fea7d6a4760000000049454e44ae426082")


@pytest.fixture(scope="module")
def quick_figures():
    """matplotlib figures drawn but not rendered (a 1 x 1 PNG each): for tests that read a
    report's text, where rendering the PNGs would be most of the time. The figures' data and
    captions are unchanged; the browser and example tests render them for real."""
    import matplotlib.pyplot as plt

    from harness.report import figures

    def finish(fig, ax, *args, **kwargs) -> bytes:
        plt.close(fig)
        return TINY_PNG

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(figures, "_finish", finish)
        yield
