"""`train.compile: true` (meant for GPUs) runs the same loop on the CPU: the compiled module
trains, evaluates and saves like the eager one. The backend is aot_eager here (dynamo's
tracing and AOT autograd, no C++ code generation, which takes about 40 s on this machine);
on a GPU the default backend compiles the same wrapped module."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import tiny_raw

import harness.train.loop as loop
from harness.api import run


@pytest.mark.slow
def test_compiled_run_matches_the_eager_run(tmp_path: Path, monkeypatch) -> None:
    real, compiled = torch.compile, []

    def compile_aot_eager(model, **kwargs):
        compiled.append(type(model).__name__)
        return real(model, backend="aot_eager", **kwargs)

    monkeypatch.setattr(loop.torch, "compile", compile_aot_eager)
    run(tiny_raw(train={"compile": True}), results_dir=tmp_path / "compiled")
    monkeypatch.setattr(loop.torch, "compile", real)
    run(tiny_raw(), results_dir=tmp_path / "eager")

    assert compiled == ["MLP"]
    (c_dir,) = (tmp_path / "compiled").rglob("metrics.csv")
    (e_dir,) = (tmp_path / "eager").rglob("metrics.csv")
    c_rows = [line.split(",") for line in c_dir.read_text().splitlines()]
    e_rows = [line.split(",") for line in e_dir.read_text().splitlines()]
    assert c_rows[0] == e_rows[0] and len(c_rows) == len(e_rows) == 3  # header + 2 epochs
    timing = {c_rows[0].index(k) for k in ("samples_per_sec", "seconds")}
    for c, e in zip(c_rows[1:], e_rows[1:], strict=True):
        for i, (a, b) in enumerate(zip(c, e, strict=True)):
            if i not in timing:
                assert float(a) == pytest.approx(float(b), rel=1e-5, abs=1e-6), c_rows[0][i]
    saved = torch.load(c_dir.parent / "model.pt", weights_only=True)
    eager = torch.load(e_dir.parent / "model.pt", weights_only=True)
    assert list(saved) == list(eager)  # the module's own keys, no "_orig_mod." prefix
