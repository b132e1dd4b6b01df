"""Loss on hard or soft targets, evaluation passes, and per-epoch statistics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy; targets are class ids (N,) / (N, T) or probabilities (N, K)."""
    if logits.dim() == 3:  # language model: (N, T, V)
        logits = logits.reshape(-1, logits.size(-1))
        targets = targets.reshape(-1, *targets.shape[2:])
    if targets.dtype in (torch.int64, torch.int32):
        return F.cross_entropy(logits, targets)
    return -(targets * F.log_softmax(logits, dim=-1)).sum(-1).mean()


def correct_count(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(-1) == y).sum()


@dataclass
class EvalResult:
    loss: float
    acc: float
    n: int


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, prepare, batch_size: int) -> torch.Tensor:
    """Eval-mode logits for a whole split, in batches (restores the train/eval mode after)."""
    was_training = model.training
    model.eval()
    out = [model(prepare(x[i:i + batch_size])).float() for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return torch.cat(out)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, prepare,
             batch_size: int) -> EvalResult:
    logits = predict_logits(model, x, prepare, batch_size)
    loss = cross_entropy(logits, y)
    n = y.numel()
    acc = correct_count(logits, y).float() / n
    return EvalResult(loss=float(loss), acc=float(acc), n=n)


class RunningStats:
    """Sums kept on the device; read once per epoch (no per-step host sync)."""

    def __init__(self, device: torch.device) -> None:
        self.loss = torch.zeros((), device=device, dtype=torch.float64)
        self.correct = torch.zeros((), device=device, dtype=torch.float64)
        self.grad_norm = torch.zeros((), device=device, dtype=torch.float64)
        self.n = 0
        self.steps = 0

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor,
            grad_norm: torch.Tensor) -> None:
        count = y.numel()
        self.loss += loss.detach().double() * count
        self.correct += correct_count(logits.detach(), y).double()
        self.grad_norm += grad_norm.double()
        self.n += count
        self.steps += 1

    def finite(self, member: int = 0) -> bool:
        return bool(torch.isfinite(self.loss))

    def any_finite(self, active: torch.Tensor | None = None) -> bool:
        return self.finite()

    def read(self, member: int = 0) -> dict[str, float]:
        n = max(1, self.n)
        return {
            "train_loss": float(self.loss) / n,
            "train_acc": float(self.correct) / n,
            "grad_norm": float(self.grad_norm) / max(1, self.steps),
        }


class MemberStats:
    """RunningStats of each member of a population: (K,) sums on the device, read once per
    epoch. Each member's loss is its own mean, so its sum matches a run alone's."""

    def __init__(self, device: torch.device, members: int) -> None:
        self.members = members
        self.loss = torch.zeros(members, device=device, dtype=torch.float64)
        self.correct = torch.zeros(members, device=device, dtype=torch.float64)
        self.grad_norm = torch.zeros(members, device=device, dtype=torch.float64)
        self.n = 0  # samples per member
        self.steps = 0

    def add(self, losses: torch.Tensor, logits: torch.Tensor, y: torch.Tensor,
            grad_norms: torch.Tensor) -> None:
        count = y.numel() // self.members
        self.loss += losses.detach().double() * count
        hits = logits.detach().argmax(-1) == y
        self.correct += hits.reshape(self.members, -1).sum(1).double()
        self.grad_norm += grad_norms.double()
        self.n += count
        self.steps += 1

    def finite(self, member: int) -> bool:
        return bool(torch.isfinite(self.loss[member]))

    def any_finite(self, active: torch.Tensor | None = None) -> bool:
        """Some member still training (`active`, a (K,) mask) has a finite loss."""
        finite = torch.isfinite(self.loss)
        return bool((finite if active is None else finite & active).any())

    def read(self, member: int) -> dict[str, float]:
        n = max(1, self.n)
        return {
            "train_loss": float(self.loss[member]) / n,
            "train_acc": float(self.correct[member]) / n,
            "grad_norm": float(self.grad_norm[member]) / max(1, self.steps),
        }


def global_grad_norm(model: nn.Module) -> torch.Tensor:
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


def member_grad_norms(population: nn.Module, members: int) -> torch.Tensor:
    """Each member's global gradient norm, (K,), from the population's stacked gradients."""
    grads = [p.grad.reshape(members, -1) for p in population.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(members)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g, dim=1)
                                                 for g in grads]), dim=0)


@torch.no_grad()
def weight_norm(model: nn.Module) -> float:
    params = [p.detach() for p in model.parameters()]
    return float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(params))))


def generalization_gap(row: dict[str, Any] | Any) -> dict[str, float]:
    """gap_loss = val_loss - train loss, gap_acc = train acc - val acc, using the eval-mode
    train metrics when present (the running ones include dropout and augmentation)."""
    out: dict[str, float] = {}
    train_loss = row.get("train_eval_loss", row.get("train_loss"))
    train_acc = row.get("train_eval_acc", row.get("train_acc"))
    if train_loss is not None and row.get("val_loss") is not None:
        out["gap_loss"] = float(row["val_loss"]) - float(train_loss)
    if train_acc is not None and row.get("val_acc") is not None:
        out["gap_acc"] = float(train_acc) - float(row["val_acc"])
    return out
