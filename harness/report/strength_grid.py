"""Learning rate x regularizer strength, one heatmap per form (weight decay: L2 vs decoupled).

Loshchilov & Hutter 2019 (Fig. 2) show why a single strength range misleads: under L2 with
Adam the best lambda moves with the learning rate, under decoupled decay it moves much less,
because decoupled decay shrinks a weight by lr * lambda per step whatever the gradient's
scale. A study whose variants vary `optim.lr` and `regularizers.weight_decay.value` gets this
section: per form, mean test accuracy (at the best-val epoch) over lr x lambda, the best
lambda per lr chosen on validation accuracy, and a flag where that best sits on an edge.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

LR = "optim.lr"
STRENGTH = "regularizers.weight_decay.value"
MODE = "regularizers.weight_decay.mode"
DEFAULT_MODE = "decoupled"  # the regularizer's default


def grid_frame(summary: pd.DataFrame, settings: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per variant with a nonzero strength: mode, lr, strength, val and test means."""
    rows = []
    for _, r in summary.iterrows():
        s = settings.get(str(r["variant"])) or {}
        value = s.get(STRENGTH)
        if s.get(LR) is None or not isinstance(value, (int, float)) or value == 0:
            continue
        rows.append({"variant": r["variant"], "mode": s.get(MODE) or DEFAULT_MODE,
                     "lr": float(s[LR]), "strength": float(value),
                     "val": r.get("best_val_acc_mean"), "test": r.get("best_test_acc_mean")})
    return pd.DataFrame(rows)


def best_per_lr(frame: pd.DataFrame) -> pd.DataFrame:
    """Per mode and lr: the strength with the best mean validation accuracy, and whether it
    is the smallest or largest strength tried at that lr."""
    out = []
    for (mode, lr), g in frame.dropna(subset=["val"]).groupby(["mode", "lr"]):
        best = g.loc[g["val"].idxmax()]
        lo, hi = g["strength"].min(), g["strength"].max()
        edge = "lower" if best["strength"] == lo else "upper" if best["strength"] == hi else ""
        out.append({"mode": mode, "lr": lr, "strength": best["strength"], "val": best["val"],
                    "test": best["test"], "edge": edge if g["strength"].nunique() >= 3 else ""})
    return pd.DataFrame(out)


def heatmap_png(frame: pd.DataFrame, best: pd.DataFrame) -> bytes:
    """One panel per mode: test accuracy over lr (x) x strength (y); the best strength per lr
    on validation circled."""
    from harness.report.figures import PANEL_SIZE, _png, plt

    modes = sorted(frame["mode"].unique())
    vmin, vmax = np.nanmin(frame["test"]), np.nanmax(frame["test"])
    width, height = PANEL_SIZE
    fig, axes = plt.subplots(1, len(modes), figsize=(width * len(modes), height * 1.25),
                             squeeze=False)
    for ax, mode in zip(axes[0], modes, strict=True):
        g = frame[frame["mode"] == mode]
        table = g.pivot_table(index="strength", columns="lr", values="test")
        im = ax.imshow(table.to_numpy(), origin="lower", cmap="viridis", vmin=vmin, vmax=vmax,
                       aspect="auto")
        ax.set_xticks(range(len(table.columns)), [f"{x:g}" for x in table.columns])
        ax.set_yticks(range(len(table.index)), [f"{y:g}" for y in table.index])
        for i, y in enumerate(table.index):
            for j, x in enumerate(table.columns):
                v = table.loc[y, x]
                if math.isfinite(v):
                    ax.text(j, i, f"{v * 100:.1f}", ha="center", va="center", fontsize=7,
                            color="white" if v < (vmin + vmax) / 2 else "black")
        for _, b in best[best["mode"] == mode].iterrows():
            j, i = list(table.columns).index(b["lr"]), list(table.index).index(b["strength"])
            ax.scatter([j], [i], s=420, facecolors="none", edgecolors="red", linewidths=1.5)
        ax.set_title(f"{mode}: test acc (%)", fontsize=9)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("weight decay λ")
    fig.subplots_adjust(wspace=0.45)
    fig.colorbar(im, ax=list(axes[0]), shrink=0.8, label="test acc")
    return _png(fig)


def section(summary: pd.DataFrame, settings: dict[str, dict[str, Any]],
            fig_dir: Path) -> dict[str, Any] | None:
    frame = grid_frame(summary, settings)
    if frame.empty or frame["lr"].nunique() < 2 or frame["strength"].nunique() < 2:
        return None
    best = best_per_lr(frame)
    lines = ["Mean test accuracy at the best-val epoch over learning rate x weight decay λ, one "
             "panel per form; circled: the best λ at each lr on validation accuracy "
             "(Loshchilov & Hutter 2019 expect it to move with lr under L2, much less when "
             "decoupled).", "", "| form | lr | best λ (val) | val acc | test acc | on an edge |",
             "|---|---|---|---|---|---|"]
    for _, b in best.iterrows():
        edge = f"{b['edge']} edge: widen the range" if b["edge"] else "no"
        lines.append(f"| {b['mode']} | {b['lr']:g} | {b['strength']:g} | {b['val']:.3f} | "
                     f"{b['test']:.3f} | {edge} |")
    for mode, g in best.groupby("mode"):
        moves = g["strength"].nunique() > 1
        lines.append("")
        lines.append(f"{mode}: the best λ {'moves' if moves else 'stays'} across learning rates "
                     f"({', '.join(f'lr {r.lr:g}: λ {r.strength:g}' for r in g.itertuples())}).")
    path = fig_dir / "strength_grid.png"
    from harness.record.disk import atomic_write_bytes

    atomic_write_bytes(path, heatmap_png(frame, best))
    return {"title": "Learning rate x weight decay", "markdown": "\n".join(lines),
            "figures": [{"title": "Test accuracy over lr x λ, per form", "path": path}]}
