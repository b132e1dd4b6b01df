"""How long each shipped ablation study takes: every study run with one seed, timed, and
the full study estimated as that time x its number of seeds (runs of one variant take
about the same time whatever the seed). Writes a section of bench/RESULTS.md.

    python bench/study_times.py [STUDY ...]      # default: every ablation study
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_md import machine, write_section  # noqa: E402

from harness.study.execute import run_study  # noqa: E402
from harness.study.plan import expand  # noqa: E402
from harness.study.spec import find_study_file, list_studies, load_study  # noqa: E402


def time_study(name: str, root: Path) -> tuple[int, int, float, float]:
    path = find_study_file(name)
    study = load_study(path)
    full_runs = len(expand(study, str(path)))
    seeds = len(study.seed_list())
    one = study.model_copy(update={"seeds": [study.seed_list()[0]]})
    one.base.setdefault("tracking", {})["wandb"] = "disabled"
    t0 = time.perf_counter()
    run_study(one, source=str(path), results_dir=root, workers=1)
    seconds = time.perf_counter() - t0
    return full_runs, seeds, seconds, seconds * seeds


def main() -> None:
    names = sys.argv[1:] or [n for n, _ in list_studies("ablation")]
    rows = []
    for name in names:
        with tempfile.TemporaryDirectory() as tmp:
            runs, seeds, one, full = time_study(name, Path(tmp))
        rows.append(f"| {name} | {runs} | {seeds} | {one:.0f} | {full / 60:.1f} |")
        print(rows[-1], flush=True)
    body = "\n".join([
        f"Machine: {machine()}. `python bench/study_times.py`: each study with its first "
        "seed only, 1 worker, W&B off; the full study is estimated as that time x seeds.",
        "", "| study | runs | seeds | 1-seed wall (s) | full study, estimated (min) |",
        "|---|---|---|---|---|", *rows])
    write_section("Study durations", body)


if __name__ == "__main__":
    main()
