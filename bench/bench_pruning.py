"""Pruning pays: the same search with the median pruner and with none, in one run.

Takes the search of studies/tune_cnn_mnist1d.yaml (same space, sampler seed and n_trials),
runs it twice into fresh temporary folders, once with its median pruner and once with
`pruner: none`, and prints the epochs each consumed, the best validation accuracy each
found, and the ratios. Target: pruning reaches a best val accuracy within 1 point using at
most half the epochs. Appends the figures under "Pruning" in bench/RESULTS.md.

    python bench/bench_pruning.py [--trials N] [--study NAME]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_md import machine, write_section  # noqa: E402

from harness.study.search import create_search  # noqa: E402
from harness.study.spec import StudyConfig, find_study_file, load_study  # noqa: E402
from harness.study.tune import trial_epochs  # noqa: E402
from harness.study.tune_space import parse_tune  # noqa: E402
from harness.study.worker import worker_loop  # noqa: E402


def search(study: StudyConfig, pruner: object, root: Path) -> dict[str, float]:
    from optuna.trial import TrialState

    raw = study.model_dump(mode="json", exclude_unset=True)
    raw["tune"] = {**raw["tune"], "pruner": pruner}
    raw["base"].setdefault("tracking", {})["wandb"] = "disabled"
    variant = StudyConfig.model_validate(raw)
    spec = parse_tune(variant, "bench")
    url = f"sqlite:///{root / 'queue.db'}"
    ostudy = create_search(url, variant, spec, "bench")
    t0 = time.perf_counter()
    worker_loop(url, variant.name, root, threads=os.cpu_count() or 1, worker=0, parallel=False)
    seconds = time.perf_counter() - t0
    trials = ostudy.get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    return {"epochs": sum(trial_epochs(t) for t in trials), "best": ostudy.best_value,
            "complete": len(complete), "pruned": sum(t.state == TrialState.PRUNED for t in trials),
            "seconds": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", default="tune_cnn_mnist1d")
    ap.add_argument("--trials", type=int, default=None, help="default: the study's n_trials")
    args = ap.parse_args()
    study = load_study(args.study)
    spec = parse_tune(study, str(find_study_file(args.study)))
    if args.trials:
        raw = study.model_dump(mode="json", exclude_unset=True)
        raw["tune"]["n_trials"] = args.trials
        study = StudyConfig.model_validate(raw)
        spec = parse_tune(study, "bench")
    pruner = study.tune.get("pruner") or "median"
    results = {}
    for label, p in (("median", pruner), ("none", "none")):
        with tempfile.TemporaryDirectory(prefix=f"bench-pruning-{label}-") as tmp:
            results[label] = search(study, p, Path(tmp))
        r = results[label]
        print(f"{label:>6}: {r['epochs']:.0f} epochs, best val acc {r['best']:.4f} "
              f"({r['complete']:.0f} complete, {r['pruned']:.0f} pruned, {r['seconds']:.0f} s)")
    m, n = results["median"], results["none"]
    epoch_ratio = m["epochs"] / n["epochs"]
    gap = (n["best"] - m["best"]) * 100
    ok = epoch_ratio <= 0.5 and gap <= 1.0
    print(f"epochs ratio (median / none): {epoch_ratio:.2f}; best val acc difference: "
          f"{gap:+.2f} points (none - median); target (<= 0.5, <= 1 point): "
          f"{'met' if ok else 'NOT met'}")
    body = "\n".join([
        f"`python bench/bench_pruning.py` ({machine()}): study {args.study}, "
        f"{spec.n_trials} trials, sampler {spec.sampler_name} seed {spec.seed}, "
        f"{(study.base.get('train') or {}).get('epochs')} epochs per full trial.",
        "",
        "| pruner | epochs consumed | best val acc | complete | pruned | seconds |",
        "|---|---|---|---|---|---|",
        *[f"| {k} | {r['epochs']:.0f} | {r['best']:.4f} | {r['complete']:.0f} | "
          f"{r['pruned']:.0f} | {r['seconds']:.0f} |" for k, r in results.items()],
        "",
        f"Epochs ratio median/none: {epoch_ratio:.2f}; best val acc: none - median = "
        f"{gap:+.2f} points. Target (ratio <= 0.5 within 1 point): "
        f"{'met' if ok else 'not met'}.",
    ])
    write_section("Pruning", previous_entries("Pruning") + body)


def previous_entries(title: str) -> str:
    """Earlier measurements of the section, kept: each run appends a dated entry."""
    import re

    from results_md import RESULTS

    text = RESULTS.read_text() if RESULTS.is_file() else ""
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    return m.group(1).strip() + "\n\n" if m and m.group(1).strip() else ""


if __name__ == "__main__":
    main()
