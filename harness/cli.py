"""The `harness` command line: parse, call, print. The work lives in the modules."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from harness.errors import HarnessError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Ablation harness for regularization in deep learning.")

# timm-style shortcut flags -> dotted config keys
SHORTCUTS: dict[str, str] = {
    "drop": "regularizers.dropout.p",
    "drop_connect": "regularizers.dropconnect.p",
    "drop_path": "regularizers.drop_path.rate",
    "weight_decay": "regularizers.weight_decay.value",
    "smoothing": "regularizers.label_smoothing.epsilon",
    "mixup": "regularizers.mixup.alpha",
    "cutmix": "regularizers.cutmix.alpha",
    "model_ema": "regularizers.ema.decay",
    "clip_grad": "regularizers.grad_clip.threshold",
    "clip_mode": "regularizers.grad_clip.mode",
    "patience": "regularizers.early_stopping.patience",
}


def fail(err: HarnessError, debug: bool) -> None:
    from harness.console import error_line

    if debug:
        raise err
    error_line(str(err))
    raise typer.Exit(code=err.exit_code)


Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")]
DataDir = Annotated[Path | None, typer.Option(
    "--data-dir", help="Dataset folder (default: $HARNESS_DATA_DIR, else a per-user cache).")]


@app.command()
def run(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Run config YAML.")] = None,
    dataset: Annotated[str | None, typer.Option(help="mnist1d, digits, mnist, ...")] = None,
    model: Annotated[str | None, typer.Option(help="mlp, cnn, resnet, vit, ...")] = None,
    epochs: Annotated[int | None, typer.Option()] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    width: Annotated[int | None, typer.Option()] = None,
    depth: Annotated[int | None, typer.Option()] = None,
    batch_size: Annotated[int | None, typer.Option()] = None,
    lr: Annotated[float | None, typer.Option()] = None,
    optimizer: Annotated[str | None, typer.Option(help="sgd, adam, adamw")] = None,
    schedule: Annotated[str | None, typer.Option(help="constant, cosine, step")] = None,
    label_noise: Annotated[float | None, typer.Option()] = None,
    train_size: Annotated[int | None, typer.Option()] = None,
    drop: Annotated[float | None, typer.Option(help="dropout p")] = None,
    drop_connect: Annotated[float | None, typer.Option(help="DropConnect p")] = None,
    drop_path: Annotated[float | None, typer.Option(help="stochastic depth rate")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="weight decay lambda")] = None,
    smoothing: Annotated[float | None, typer.Option(help="label smoothing epsilon")] = None,
    mixup: Annotated[float | None, typer.Option(help="mixup alpha")] = None,
    cutmix: Annotated[float | None, typer.Option(help="cutmix alpha")] = None,
    model_ema: Annotated[float | None, typer.Option(help="EMA decay")] = None,
    clip_grad: Annotated[float | None, typer.Option(help="gradient clipping threshold")] = None,
    clip_mode: Annotated[str | None, typer.Option(help="norm, value, agc")] = None,
    patience: Annotated[int | None, typer.Option(help="early stopping patience")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Any config key: --set regularizers.dropout.p=0.3")] = None,
    data_dir: DataDir = None,
    download: Annotated[bool, typer.Option("--download", help="Fetch a missing dataset.")] = False,
    wandb: Annotated[str | None, typer.Option(help="auto, online, offline, disabled")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads")] = None,
    results_dir: Annotated[Path, typer.Option(help="Where results go.")] = Path("results"),
    study: Annotated[str | None, typer.Option(help="Study name (results/<study>/).")] = None,
    variant: Annotated[str | None, typer.Option(help="Variant name.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Re-run even if finished.")] = False,
    debug: Debug = False,
) -> None:
    """Train one run from flags and/or a YAML file, with a progress bar and a summary."""
    from harness.config import load_run_config, parse_override

    values: dict[str, Any] = {
        "data.name": dataset, "model.name": model, "train.epochs": epochs, "seed": seed,
        "model.width": width, "model.depth": depth, "train.batch_size": batch_size,
        "optim.lr": lr, "optim.name": optimizer, "schedule.name": schedule,
        "data.label_noise": label_noise, "data.train_size": train_size,
        "tracking.wandb": wandb, "train.device": device, "train.threads": threads,
        "study": study, "variant": variant,
        "data.download": True if download else None,
    }
    local = locals()
    values.update({key: local[flag] for flag, key in SHORTCUTS.items()})
    overrides = {k: v for k, v in values.items() if v is not None}
    try:
        for item in set_ or []:
            key, value = parse_override(item)
            overrides[key] = value
        cfg = load_run_config(config, overrides)
        run_and_print(cfg, results_dir, data_dir, force)
    except HarnessError as err:
        fail(err, debug)


def run_and_print(cfg: Any, results_dir: Path, data_dir: Path | None, force: bool) -> None:
    from harness.console import RunProgress, console
    from harness.train.loop import train_run

    result = train_run(cfg, results_dir=results_dir, data_dir=data_dir,
                       reporter=RunProgress(), force=force)
    s = result.summary
    where = result.run_dir.path
    if not result.rows and s.get("status") == "completed":
        console.print(f"already finished: {where} (use --force to run again)")
    console.print(summary_text(s))
    console.print(f"results: {where}")
    wandb_dir = (s.get("wandb") or {}).get("run_dir")
    if (s.get("wandb") or {}).get("mode") == "offline" and wandb_dir:
        console.print(f"W&B offline run: {wandb_dir}  (upload later: wandb sync {wandb_dir})")


def summary_text(s: dict[str, Any]) -> str:
    parts = [f"status {s.get('status')}", f"{s.get('epochs_run')} epochs",
             f"{s.get('wall_time', 0):.1f}s", f"{s.get('params', 0):,} params"]
    if s.get("best_epoch") is not None:
        parts.append(f"best val acc {s.get('best_val_acc', float('nan')):.4f} "
                     f"(epoch {s['best_epoch']})")
    if s.get("final_test_acc") is not None:
        parts.append(f"test acc {s['final_test_acc']:.4f}")
    return " | ".join(parts)


def main() -> None:  # pragma: no cover - console entry
    os.environ.setdefault("WANDB_SILENT", "true")
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
