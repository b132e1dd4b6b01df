"""Knowledge distillation. Hinton et al. 2015, "Distilling the Knowledge in a Neural Network"."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from harness.errors import ConfigError
from harness.regularizers.base import (
    Batch,
    Params,
    Phase,
    Regularizer,
    RunContext,
    TrainState,
    UpstreamNeed,
    register,
)


class TeacherParams(Params):
    run: str | None = None  # a finished run folder (holds config.json and model.pt)
    # Trained first by the planner (harness/study/upstream.py), which then gives its folder
    # as `run`: overrides on this run's config, or the name of a study's upstream run.
    config: dict[str, Any] | None = None
    upstream: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> TeacherParams:
        if sum(v is not None for v in (self.run, self.config, self.upstream)) != 1:
            raise ValueError("give exactly one of teacher.run (a finished run folder), "
                             "teacher.config (overrides to train the teacher) or "
                             "teacher.upstream (a study's upstream run)")
        return self


class DistillationParams(Params):
    temperature: float = Field(4.0, gt=0.0)
    alpha: float = Field(0.5, ge=0.0, le=1.0)  # weight of the hard-label cross-entropy
    teacher: TeacherParams


def distillation_loss(hard_loss: torch.Tensor, student_logits: torch.Tensor,
                      teacher_logits: torch.Tensor, temperature: float,
                      alpha: float) -> torch.Tensor:
    """alpha * hard + (1 - alpha) * T^2 * KL(softmax(t / T) || softmax(s / T)), the KL
    summed over classes and averaged over samples (tokens for language models)."""
    k = student_logits.size(-1)
    s = F.log_softmax(student_logits.reshape(-1, k).float() / temperature, dim=-1)
    t = F.log_softmax(teacher_logits.reshape(-1, k).float() / temperature, dim=-1)
    kl = F.kl_div(s, t, reduction="batchmean", log_target=True)
    return alpha * hard_loss + (1.0 - alpha) * temperature**2 * kl


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Training or loading a teacher leaves the student's random streams as they were, so
    the student is the same whether its teacher was trained now or reused."""
    states = (random.getstate(), np.random.get_state(), torch.get_rng_state(),
              torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
              torch.get_num_threads())
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
        if states[3] is not None:
            torch.cuda.set_rng_state_all(states[3])
        torch.set_num_threads(states[4])


@register
class Distillation(Regularizer[DistillationParams]):
    """Replaces the loss with alpha * CE + (1 - alpha) * T^2 * KL(teacher || student) at
    temperature T; the teacher (eval mode, no grad) sees the same augmented input. The hard
    term is the loop's cross-entropy on `batch.targets` (the hard labels unless mixup or label
    smoothing changed them). The teacher is loaded when the student's model is built, from
    a finished run folder (relative paths from the run's results folder, `ctx.results_dir`);
    a teacher given as `config` or `upstream` is trained first by the planner."""

    name = "distillation"
    phase = Phase.REPLACE_LOSS  # penalties (l1, l2, ...) are added after, unscaled
    reference = "Hinton et al. 2015"
    applies_to = "all models (teacher and student on the same dataset)"
    example: ClassVar[dict] = {"temperature": 4.0, "alpha": 0.5,
                               "teacher": {"config": {"model": {"name": "mlp"}}}}
    example_overrides: ClassVar[dict] = {}

    def __init__(self, params: DistillationParams, ctx: RunContext) -> None:
        super().__init__(params, ctx)
        self.teacher: nn.Module | None = None
        self.teacher_dir: Path | None = None

    @classmethod
    def upstream(cls, params: DistillationParams) -> list[UpstreamNeed]:
        """A teacher given as a study's upstream run or as overrides on the student's config
        is trained first (variant "teacher"); one given as a run folder is already there."""
        t = params.teacher
        if t.upstream is not None:
            return [UpstreamNeed("teacher", "teacher.upstream", t.upstream, name=t.upstream)]
        if t.config is not None:
            return [UpstreamNeed("teacher", "teacher.config", "teacher", overrides=t.config)]
        return []

    @classmethod
    def linked(cls, raw: dict[str, Any], need: UpstreamNeed, folder: str) -> dict[str, Any]:
        return {**raw, need.param: {"run": folder}}

    # --- the teacher -----------------------------------------------------------------
    def results_dir(self) -> Path:
        return self.ctx.results_dir

    def find_teacher_dir(self) -> Path:
        """The teacher's finished run folder. A teacher given as `config` or `upstream` is an
        upstream run: the planner trains it first and passes its folder as `run`."""
        from harness.record.run_dir import finished_run

        p = self.params
        if p.teacher.run is None:
            raise ConfigError("regularizers.distillation.teacher: a teacher given as config or "
                              "upstream is trained first by the planner; run it in a study, "
                              "with `harness run` or harness.run(), or give teacher.run")
        return finished_run(p.teacher.run, self.results_dir(),
                            "regularizers.distillation.teacher.run")[0]

    def load_teacher(self) -> nn.Module:
        if self.ctx.load_run_model is None:
            raise ConfigError("regularizers.distillation: this run cannot load a teacher "
                              "(its context has no load_run_model)")
        with preserved_rng():
            path = self.find_teacher_dir()
            try:
                # a teacher's own teacher is part of its training, not of its model
                model = self.ctx.load_run_model(path, self.name)
            except ConfigError as err:
                raise ConfigError(f"regularizers.distillation.teacher: {err}") from None
        model.to(self.ctx.device).eval()
        for q in model.parameters():
            q.requires_grad_(False)
        self.teacher_dir = path
        return model

    def teacher_model(self) -> nn.Module:
        if self.teacher is None:
            self.teacher = self.load_teacher()
        return self.teacher

    # --- hooks -------------------------------------------------------------------------
    def on_model(self, model: nn.Module) -> nn.Module:
        self.teacher_model()  # before training starts (and before the student's tracker)
        return model

    def loss(self, state: TrainState, loss: torch.Tensor, batch: Batch,
             logits: torch.Tensor) -> torch.Tensor:
        p = self.params
        teacher = self.teacher_model()
        with torch.no_grad():
            teacher_logits = teacher(self.ctx.data.normalize(batch.x))
        return distillation_loss(loss, logits, teacher_logits, p.temperature, p.alpha)

    def summary(self) -> dict[str, Any]:
        return {"teacher_run": str(self.teacher_dir) if self.teacher_dir else None}
