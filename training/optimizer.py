"""The optimiser of the recipe: SGD with two parameter groups, linear warm-up and step decays."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["WarmupStepSchedule", "make_optimizer"]


class WarmupStepSchedule:
    """Per-epoch learning-rate factor: linear warm-up ``(e + 1) / warmup`` for the first
    ``warmup`` epochs, then ``gamma ** (number of milestones <= e)``.

    With the recipe (warm-up 10, milestones 20 and 50, gamma 0.1): epochs 0-9 ramp 0.1..1.0,
    10-19 1.0, 20-49 0.1, 50+ 0.01 (the community code base's ``adjust_learning_rate``).
    Each optimizer group keeps its own base lr (``initial_lr``).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, warmup_epochs: int, milestones: list[int], gamma: float) -> None:
        self.optimizer = optimizer
        self.warmup, self.milestones, self.gamma = warmup_epochs, list(milestones), gamma
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.epoch = 0

    def factor(self, epoch: int) -> float:
        if epoch < self.warmup:
            return (epoch + 1) / self.warmup
        return self.gamma ** sum(1 for m in self.milestones if epoch >= m)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        f = self.factor(epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * f

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "warmup": self.warmup, "milestones": self.milestones, "gamma": self.gamma}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.warmup, self.milestones, self.gamma = state["warmup"], list(state["milestones"]), state["gamma"]
        self.set_epoch(state["epoch"])


def make_optimizer(model: torch.nn.Module, optim_cfg) -> torch.optim.SGD:
    """SGD with two groups: ``backbone`` (ResNet, lr x backbone_lr_factor) and ``new`` (the rest)."""
    backbone_ids = {id(p) for p in model.backbone.parameters()}
    backbone = [p for p in model.parameters() if id(p) in backbone_ids and p.requires_grad]
    new = [p for p in model.parameters() if id(p) not in backbone_ids and p.requires_grad]
    groups = [{"params": backbone, "lr": optim_cfg.lr * optim_cfg.backbone_lr_factor, "name": "backbone"},
              {"params": new, "lr": optim_cfg.lr, "name": "new"}]
    return torch.optim.SGD(groups, lr=optim_cfg.lr, momentum=optim_cfg.momentum, nesterov=optim_cfg.nesterov,
                           weight_decay=optim_cfg.weight_decay)
