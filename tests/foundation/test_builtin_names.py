"""harness/builtin_names.py, the table the CLI checks names and option ranges against before
PyTorch is imported, against the real registries: a model, dataset or regularizer added,
renamed or given another field makes this fail until the table is rewritten with

    PYTHONPATH=$PWD:$PWD/tests python tests/foundation/test_builtin_names.py

(no plug-ins: entry points are off, as in the whole suite)."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import annotated_types
import pytest
from conftest import REPO
from pydantic import BaseModel

TABLE = REPO / "harness" / "builtin_names.py"
CONSTRAINTS = {annotated_types.Ge: "ge", annotated_types.Gt: "gt", annotated_types.Le: "le",
               annotated_types.Lt: "lt"}
HEADER = (
    '"""The built-in registries\' names and option fields, as data: the CLI\'s first pass\n'
    "checks a config's names and option ranges against this table before PyTorch is imported\n"
    "(importing a registry imports PyTorch: seconds), so a misspelt name or an out-of-range\n"
    "value is answered at once. Generated from the registries by\n"
    "tests/foundation/test_builtin_names.py, which also fails when they no longer match it. A\n"
    "field is (annotation, constraints, required); custom validators are not here: the full\n"
    "check that follows applies them.\n"
    '"""\n\n# ruff: noqa: E501\nfrom typing import Any, Literal\n\n')


def annotation_source(annotation: Any) -> str:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "Any"  # a nested section: checked by the full pass only
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def fields_source(model: type[BaseModel]) -> str:
    rows = []
    for name, field in model.model_fields.items():
        bounds = {}
        for item in field.metadata:
            kind = CONSTRAINTS.get(type(item))
            assert kind, f"{model.__name__}.{name}: {item!r} is not in the table's vocabulary"
            bounds[kind] = getattr(item, kind)
        rows.append(f"        {name!r}: ({annotation_source(field.annotation)}, {bounds!r}, "
                    f"{field.is_required()!r}),")
    return "{\n" + "\n".join(rows) + "\n    }" if rows else "{}"


def table_source() -> str:
    """The table as the registries hold it now."""
    from harness.data import DATASETS
    from harness.data.base import info_of
    from harness.models import MODELS
    from harness.regularizers import REGULARIZERS

    regularizers = {name: cls.Params for name, cls in REGULARIZERS.items()}
    options = {n: info_of(n).options for n in DATASETS.names() if info_of(n).options}

    def mapping(name: str, models: dict[str, Any]) -> str:
        body = "".join(f"    {k!r}: {fields_source(m)},\n" for k, m in models.items())
        return f"{name}: dict[str, dict[str, tuple[Any, dict[str, Any], bool]]] = {{\n{body}}}\n"

    return (HEADER
            + f"DATASETS = {tuple(DATASETS.names())!r}\n"
            + f"MODELS = {tuple(MODELS.names())!r}\n"
            + f"REGULARIZERS = {tuple(REGULARIZERS.names())!r}\n\n"
            + "# each regularizer's params\n" + mapping("REGULARIZER_FIELDS", regularizers)
            + "\n# data.kwargs of the datasets that take options (the others take none)\n"
            + mapping("DATASET_OPTIONS", options))


def test_the_table_matches_the_registries():
    assert TABLE.read_text() == table_source(), "harness/builtin_names.py is stale: run " \
        "`PYTHONPATH=$PWD:$PWD/tests python tests/foundation/test_builtin_names.py`"


@pytest.mark.parametrize("kind", ["dataset", "model", "regularizer"])
def test_names_are_checked_without_importing_torch(kind):
    """The first pass answers an unknown name in a fresh process with torch never imported,
    and its line is the full check's line."""
    from harness.config import build_run_config
    from harness.errors import ConfigError

    raw = {"dataset": {"data": {"name": "mnist3d"}}, "model": {"model": {"name": "cnnn"}},
           "regularizer": {"regularizers": {"dropuot": {"p": 0.1}}}}[kind]
    with pytest.raises(ConfigError) as full:
        build_run_config(raw, "x.yaml")
    code = ("import sys\nfrom harness.config import build_run_config, structure_only\n"
            "from harness.errors import ConfigError\n"
            f"try:\n    with structure_only():\n        build_run_config({raw!r}, 'x.yaml')\n"
            "except ConfigError as err:\n    print(err)\n"
            "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, check=True, timeout=60)
    assert out.stdout.splitlines() == [str(full.value), "False"]


def test_an_out_of_range_value_is_the_full_checks_line(monkeypatch):
    """In the first pass (the table; the registries here are imported, so the pass is told
    they are not) an option's error is the full check's line."""
    from harness import quick_check
    from harness.config import build_run_config, structure_only
    from harness.errors import ConfigError

    monkeypatch.setattr(quick_check, "loaded_registry", lambda kind: None)
    for raw in ({"regularizers": {"dropout": {"p": 1.5}}},
                {"regularizers": {"weight_decay": {"value": 0.1, "mode": "adamw"}}},
                {"regularizers": {"mixup": {"alpha": 0}}},
                {"regularizers": {"dropout": {"rate": 0.1}}},
                {"regularizers": {"drop_path": {}}},
                {"data": {"name": "cifar100", "kwargs": {"lables": "coarse"}}},
                {"data": {"name": "mnist", "kwargs": {"x": 1}}}):
        with pytest.raises(ConfigError) as full:
            build_run_config(raw, "x.yaml")
        with pytest.raises(ConfigError) as quick, structure_only():
            build_run_config(raw, "x.yaml")
        assert str(quick.value) == str(full.value)


if __name__ == "__main__":
    os.environ["HARNESS_ENTRY_POINTS"] = "off"
    TABLE.write_text(table_source())
    print(f"wrote {TABLE}")
