"""What a study varies, and what each variant's runs hold for it: the design's swept
parameters, each variant's swept values, and the names a parameter goes by.

The plan computes a variant's swept values once (`swept_values`) and study.json carries them
(`variants[].params`, and each queued run); the report, the W&B runs and study run and the
Optuna queue read them from there. One labeller names a parameter in every form:

    key        regularizers.dropout.p   the config key, dotted
    short      dropout.p                variant names (dropout.p=0.3), tables
    wandb      dropout_p                W&B config keys and Optuna params (W&B reads a dot as
                                        nesting)
    display    dropout p                figures' axes and the report's sentences
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.dotted import flatten_dotted, get_dotted

SCALARS = (bool, int, float, str)


@dataclass(frozen=True)
class ParamLabel:
    key: str

    @property
    def short(self) -> str:
        parts = self.key.split(".")
        return ".".join(parts[1:]) if len(parts) > 1 else self.key

    @property
    def wandb(self) -> str:
        return self.short.replace(".", "_")

    @property
    def display(self) -> str:
        return display_label(self.short)


def param_label(key: str) -> ParamLabel:
    return ParamLabel(str(key))


def display_label(short: str) -> str:
    """The display form of a short label (`dropout.p` -> `dropout p`), e.g. read back from a
    variant's name."""
    return short.replace(".", " ")


def swept_parameters(design: Mapping[str, Any] | None) -> list[str]:
    """The dotted keys a sweep or grid design varies (none for the other designs)."""
    design = design or {}
    if design.get("kind") == "sweep" and design.get("parameter"):
        return [str(design["parameter"])]
    if design.get("kind") == "grid":
        return [str(k) for k in (design.get("parameters") or {})]
    return []


def sweep_axis(design: Mapping[str, Any] | None) -> str | None:
    """The design's one swept parameter (a sweep, or a grid of one axis): the x of the
    report's sweep figure; None when it varies none or several."""
    params = swept_parameters(design)
    return params[0] if len(params) == 1 else None


def swept_values(design: Mapping[str, Any] | None, own: Mapping[str, Any], is_baseline: bool,
                 config: Mapping[str, Any]) -> dict[str, Any]:
    """Each swept key's value in a variant's runs: the variant's own (a grid axis of whole
    sections gives its label), else the sweep's baseline_value (the baseline), else what the
    resolved config holds (a section axis: the label of the section it matches)."""
    design = design or {}
    axes = design.get("parameters") if design.get("kind") == "grid" else None
    out: dict[str, Any] = {}
    for key in swept_parameters(design):
        value = get_dotted(config, key)
        axis = (axes or {}).get(key)
        if key in own:
            out[key] = own[key]
        elif is_baseline and design.get("kind") == "sweep" \
                and design.get("baseline_value") is not None:
            out[key] = design["baseline_value"]
        elif isinstance(axis, Mapping):
            found = next((name for name, section in axis.items()
                          if same_section(section, value)), None)
            if found is not None:
                out[key] = found
        elif isinstance(value, SCALARS):
            out[key] = value
    return out


def same_section(section: Any, value: Any) -> bool:
    """A grid axis section (as the study file writes it) matches a resolved config section:
    the same entries, each leaf the file sets equal to the config's."""
    if not isinstance(section, Mapping) or not isinstance(value, Mapping):
        return bool(section == value)
    if set(section) != set(value):
        return False
    given, resolved = flatten_dotted("", dict(section)), flatten_dotted("", dict(value))
    return all(resolved.get(k) == v for k, v in given.items())
