"""What a search leaves for people and for the report: tuning.json, tuning.md, figures.

`write_outputs(outcome)` runs after `run_tuning` returns (the CLI calls it);
`tuning_section(study_dir)` is what the study report includes (see its docstring).
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from harness.record import StudyRecord
from harness.record.disk import atomic_write_json, atomic_write_text
from harness.record.layout import TUNING_JSON, TUNING_MD
from harness.record.numbers import number
from harness.stats.compare import compare, mean_ci
from harness.study.tune import TuneOutcome, trial_epochs
from harness.study.tune_space import OBJECTIVES, TuneSpec, describe_param

FIGURES = "figures/tuning"  # a subfolder: the report build prunes stray PNGs of figures/
RETRAIN_METRIC = "best_test_acc"  # test accuracy at the best-val epoch (what the report ranks)


def write_outputs(out: TuneOutcome) -> dict[str, str]:
    """tuning.json, figures/tuning/*.png and tuning.md; returns name -> path."""
    sdir, ostudy, spec, study, top = out.study_dir, out.search, out.spec, out.study, out.top
    trials = ostudy.get_trials(deepcopy=False)
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    importances = param_importances(ostudy, spec)
    figures = make_figures(ostudy, spec, sdir / FIGURES)
    retrain = retrain_table(sdir, [("tuned" if i == 0 else f"tuned_{i + 1}") for i in
                                   range(len(top))])
    best = top[0] if top else None
    data = {
        "study": study.name, "description": study.description,
        "objectives": [{"name": n, "direction": OBJECTIVES[n].direction,
                        "meaning": OBJECTIVES[n].doc} for n in spec.objective_names],
        "sampler": {"name": spec.sampler_name, "seed": spec.seed, **spec.sampler_options},
        "pruner": {"name": spec.pruner_name, **spec.pruner_options},
        "storage": out.storage,  # masked
        "search_seed": spec.search_seed, "confirm_seeds": spec.confirm_seed_list(),
        "budget": {"n_trials": spec.n_trials, "timeout": spec.timeout},
        "trials": {**counts, "total": len(trials)},
        "epochs_consumed": sum(trial_epochs(t) for t in trials),
        "epochs_per_trial": int((study.base.get("train") or {}).get("epochs") or 30),
        "search_seconds": out.search_seconds,
        "space": {k: {"spec": p.model_dump(mode="json", exclude_defaults=True),
                      "text": describe_param(p)} for k, p in spec.space.items()},
        "best": _trial_json(best, spec) if best else None,
        "top": [{"variant": "tuned" if i == 0 else f"tuned_{i + 1}", **_trial_json(t, spec)}
                for i, t in enumerate(top)],
        "pareto": ([_trial_json(t, spec) for t in ostudy.best_trials] if spec.multi else None),
        "importances": importances,
        "retrain": retrain,
        "figures": figures,
        "test_set_used_in_search": False,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write_json(sdir / TUNING_JSON, data)
    atomic_write_text(sdir / TUNING_MD, markdown(data))
    return {"tuning_json": str(sdir / TUNING_JSON), "tuning_md": str(sdir / TUNING_MD),
            **{f"figure_{f['kind']}": str(sdir / f["path"]) for f in figures}}


def _trial_json(t: FrozenTrial, spec: TuneSpec) -> dict[str, Any]:
    return {"trial": t.number, "values": list(t.values or []),
            "params": dict(t.params), "overrides": spec.overrides(t.params),
            "epochs": trial_epochs(t), "best_epoch": t.user_attrs.get("best_epoch")}


# ----------------------------------------------------------------------------- importances


def param_importances(ostudy: optuna.Study, spec: TuneSpec) -> dict[str, dict[str, float]]:
    """fANOVA and PED-ANOVA importances of the first objective, over the params present in
    every complete trial (conditional params are left out by Optuna)."""
    from optuna.importance import (
        FanovaImportanceEvaluator,
        PedAnovaImportanceEvaluator,
        get_param_importances,
    )

    out: dict[str, dict[str, float]] = {}
    target = (lambda t: t.values[0]) if spec.multi else None
    for name, ev in (("fanova", FanovaImportanceEvaluator(seed=0)),
                     ("ped_anova", PedAnovaImportanceEvaluator())):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                imp = get_param_importances(ostudy, evaluator=ev, target=target)
            out[name] = {k: float(v) for k, v in imp.items()}
        except Exception as err:  # too few trials, a constant objective: no importances
            out[name] = {"_error": f"{type(err).__name__}: {str(err)[:200]}"}  # type: ignore[dict-item]  # a note in place of the numbers
    return out


# ----------------------------------------------------------------------------- figures


def make_figures(ostudy: optuna.Study, spec: TuneSpec, fdir: Path) -> list[dict[str, str]]:
    """PNG figures via optuna.visualization.matplotlib (Agg); a figure that cannot be drawn
    (too few trials) is skipped, never fatal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator
    from optuna.visualization import matplotlib as ovm

    fdir.mkdir(parents=True, exist_ok=True)
    first = spec.objective_names[0]
    target = (lambda t: t.values[0]) if spec.multi else None
    kw: dict[str, Any] = {"target": target, "target_name": first} if spec.multi else \
        {"target_name": first}
    plots: list[tuple[str, str, Any]] = [
        ("history", "Optimization history", lambda: ovm.plot_optimization_history(ostudy, **kw)),
        ("importance_fanova", "Parameter importance (fANOVA)",
         lambda: ovm.plot_param_importances(ostudy, evaluator=FanovaImportanceEvaluator(seed=0),
                                            **kw)),
        ("importance_ped_anova", "Parameter importance (PED-ANOVA)",
         lambda: ovm.plot_param_importances(ostudy, evaluator=PedAnovaImportanceEvaluator(),
                                            **kw)),
        ("slice", "Slice plot", lambda: ovm.plot_slice(ostudy, **kw)),
        ("parallel", "Parallel coordinates", lambda: ovm.plot_parallel_coordinate(ostudy, **kw)),
    ]
    if not spec.multi and spec.pruner_name != "none":
        plots.append(("intermediate", "Validation curves of the trials (pruned ones stop early)",
                      lambda: ovm.plot_intermediate_values(ostudy)))
    if spec.multi:
        plots.append(("pareto", "Pareto front",
                      lambda: ovm.plot_pareto_front(ostudy, target_names=spec.objective_names)))
    out = []
    for kind, title, draw in plots:
        path = fdir / f"tune_{kind}.png"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ExperimentalWarning of every matplotlib plot
                ax = draw()
            fig = _figure_of(ax)
            fig.savefig(path, dpi=110, bbox_inches="tight")
            plt.close(fig)
        except Exception:  # too few trials for this plot
            plt.close("all")
            continue
        out.append({"kind": kind, "title": title, "path": f"{FIGURES}/{path.name}"})
    return out


def _figure_of(ax: Any) -> Any:
    if hasattr(ax, "figure"):
        return ax.figure
    import numpy as np

    return np.asarray(ax).flat[0].figure


# ----------------------------------------------------------------------------- retrain table


def retrain_table(sdir: Path, tuned: list[str]) -> list[dict[str, Any]]:
    """Per variant (baseline first): test accuracy at the best-val epoch over the confirmation
    seeds (mean, 95% t-CI), and the paired difference from the baseline."""
    by_variant: dict[str, dict[int, float | None]] = {}
    for rec in StudyRecord.load(sdir).included:
        by_variant.setdefault(rec.variant, {})[rec.seed] = (rec.summary or {}).get(RETRAIN_METRIC)
    rows = []
    base = by_variant.get("baseline", {})
    for name in ["baseline", *tuned]:
        vals = by_variant.get(name, {})
        ci = mean_ci(vals.values())
        row: dict[str, Any] = {"variant": name, "metric": RETRAIN_METRIC, "n": ci.n,
                               "mean": number(ci.mean), "ci_low": number(ci.lo),
                               "ci_high": number(ci.hi), "seeds": sorted(vals)}
        if name != "baseline":
            c = compare(vals, base)
            row.update(delta=number(c.diff), p_value=number(c.p), test=c.test, n_pairs=c.n_pairs)
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- markdown


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def markdown(d: dict[str, Any]) -> str:
    objectives = ", ".join(f"{o['name']} ({o['direction']})" for o in d["objectives"])
    t = d["trials"]
    lines = [f"## Hyperparameter search: {d['study']}", "",
             f"Objective: {objectives}, on the validation split only (the test set was never "
             f"read during the search). Sampler {d['sampler']['name']} (seed "
             f"{d['sampler']['seed']}), pruner {d['pruner']['name']}, storage "
             f"`{d['storage']}`.", "",
             f"Trials: {t.get('complete', 0)} complete, {t.get('pruned', 0)} pruned, "
             f"{t.get('fail', 0)} failed; {d['epochs_consumed']} epochs trained "
             f"(of {d['epochs_per_trial']} per full trial), {d['search_seconds']:.0f} s.", ""]
    best = d.get("best")
    if best:
        vals = ", ".join(f"{o['name']} = {v:.4f}" for o, v in zip(d["objectives"],
                                                                    best["values"], strict=False))
        lines += [f"Best trial #{best['trial']}: {vals}.", "", "| param | value |",
                  "|---|---|"]
        lines += [f"| `{k}` | {_fmt(v)} |" for k, v in best["params"].items()]
        lines.append("")
    fan = {k: v for k, v in (d["importances"].get("fanova") or {}).items() if k != "_error"}
    ped = {k: v for k, v in (d["importances"].get("ped_anova") or {}).items() if k != "_error"}
    if fan or ped:
        lines += ["| param | importance (fANOVA) | importance (PED-ANOVA) |", "|---|---|---|"]
        for k in sorted(set(fan) | set(ped), key=lambda k: -fan.get(k, 0.0)):
            lines.append(f"| `{k}` | {_fmt(fan.get(k, ''))} | {_fmt(ped.get(k, ''))} |")
        lines.append("")
    if d["retrain"]:
        lines += [f"Confirmation with fresh seeds {d['confirm_seeds']} (test set on): test "
                  "accuracy at the best-val epoch, mean [95% CI]; difference from the baseline "
                  "(paired t-test over seeds).", "",
                  "| variant | n | test acc | difference | p |", "|---|---|---|---|---|"]
        for r in d["retrain"]:
            acc = ("n/a" if r["mean"] is None else f"{r['mean']:.4f}" + (
                f" [{r['ci_low']:.4f}, {r['ci_high']:.4f}]" if r["ci_low"] is not None else ""))
            diff = "" if r.get("delta") is None else f"{r['delta'] * 100:+.2f} pts"
            p = "" if r.get("p_value") is None else f"{r['p_value']:.3g}"
            lines.append(f"| {r['variant']} | {r['n']} | {acc} | {diff} | {p} |")
        lines.append("")
    for f in d["figures"]:
        lines.append(f"![{f['title']}]({f['path']})")
    return "\n".join(lines).rstrip() + "\n"


# ----------------------------------------------------------------------------- for the report


def tuning_section(study_dir: Path | str) -> dict[str, Any]:
    """The tuning part of a study report; {} when the study was not tuned.

    Shape:
        {"title": "Hyperparameter search",
         "objectives": [{"name", "direction", "meaning"}], "sampler": str, "pruner": str,
         "storage": str (password masked),
         "trials": {"complete", "pruned", "fail", "running", "waiting", "total"},
         "epochs_consumed": int, "epochs_per_trial": int, "search_seconds": float,
         "best": {"trial", "values", "params", "overrides", "epochs", "best_epoch"} | None,
         "best_params": [{"param", "value", "text"}],   # text: the value, formatted
         "importances": [{"param", "fanova", "ped_anova"}],   # floats or None
         "retrain": [{"variant", "metric", "n", "mean", "ci_low", "ci_high", "seeds",
                      "delta", "p_value", "test", "n_pairs"}],  # baseline first, no delta
         "figures": [{"kind", "title", "path"}],   # path relative to study_dir
         "markdown": str}                          # the tuning.md fragment
    """
    sdir = Path(study_dir)
    try:
        d = json.loads((sdir / TUNING_JSON).read_text())
    except (OSError, ValueError):
        return {}
    best = d.get("best") or {}
    fan = d.get("importances", {}).get("fanova") or {}
    ped = d.get("importances", {}).get("ped_anova") or {}
    names = sorted((set(fan) | set(ped)) - {"_error"}, key=lambda k: -float(fan.get(k) or 0))
    md = sdir / TUNING_MD
    return {
        "title": "Hyperparameter search",
        "objectives": d.get("objectives", []),
        "sampler": d.get("sampler", {}).get("name"), "pruner": d.get("pruner", {}).get("name"),
        "storage": d.get("storage"), "trials": d.get("trials", {}),
        "epochs_consumed": d.get("epochs_consumed"),
        "epochs_per_trial": d.get("epochs_per_trial"),
        "search_seconds": d.get("search_seconds"),
        "best": d.get("best"),
        "best_params": [{"param": k, "value": v, "text": _fmt(v)}
                        for k, v in (best.get("params") or {}).items()],
        "importances": [{"param": k, "fanova": number(fan.get(k)), "ped_anova": number(ped.get(k))}
                        for k in names],
        "retrain": d.get("retrain", []),
        "figures": [f for f in d.get("figures", []) if (sdir / f["path"]).is_file()],
        "markdown": md.read_text() if md.is_file() else "",
    }

