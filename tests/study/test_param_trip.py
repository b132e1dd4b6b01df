"""`regularizers.dropout.p` from the study file to the training step: validated once, when
the study is planned; the queue carries the validated config, and the worker builds the
run's regularizers from it without validating again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from conftest import tiny_raw

from harness.regularizers import RegularizerStack
from harness.regularizers.dropout import DropoutParams
from harness.study.plan import RunSpec, expand
from harness.study.spec import load_study
from harness.train import build


def test_dropout_p_is_validated_once_between_the_study_file_and_the_step(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    validations: list[object] = []
    original = DropoutParams.model_validate.__func__  # type: ignore[attr-defined]

    def counted(cls: type[DropoutParams], obj: object, *args: object, **kwargs: object) -> object:
        validations.append(obj)
        return original(cls, obj, *args, **kwargs)

    monkeypatch.setattr(DropoutParams, "model_validate", classmethod(counted))
    study_file = tmp_path / "trip.yaml"
    study_file.write_text(yaml.safe_dump({
        "name": "trip", "base": tiny_raw(), "seeds": 1, "design": {
            "kind": "one_at_a_time", "variants": {"v": {"regularizers.dropout.p": 0.3}}}}))
    specs = [s for s in expand(load_study(study_file), str(study_file)) if s.variant == "v"]
    assert len(validations) == 1  # the plan
    entry = json.loads(json.dumps(specs[0].to_json()))  # what the queue stores
    assert entry["config"]["regularizers"]["dropout"] == DropoutParams(p=0.3).model_dump()
    config = RunSpec.from_json(entry).config  # a worker reads it back
    data = build.build_data(config, None, torch.device("cpu"))
    stack = RegularizerStack.from_config(config, build.run_context(config, data,
                                                                   torch.device("cpu")))
    (dropout,) = stack.items
    assert dropout.params.p == 0.3 and isinstance(dropout.params, DropoutParams)
    assert config.run_id() == specs[0].run_id  # the same run, as planned
    assert len(validations) == 1  # still the one validation of the plan
