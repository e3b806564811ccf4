"""The optimiser of the recipe: SGD with three parameter groups, linear warm-up, step decays and
optional gradient clipping."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["WarmupStepSchedule", "make_optimizer", "parameter_groups", "clip_gradients"]


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


def parameter_groups(model: torch.nn.Module, optim_cfg) -> list[dict[str, Any]]:
    """SGD parameter groups of a SPOT model, each with its lr and a ``name``:

    - ``backbone``: the ResNet (``model.backbone``), ``lr x backbone_lr_factor``;
    - ``new``: everything else (BN necks, classifiers, and new modules not listed), ``lr``;
    - ``added``: the modules named in ``optim_cfg.new_modules`` that the model has
      (``model.relation``, ``injection``, ``asr``, ``tpi``, ``fusion``), ``lr x new_module_lr_factor``;
      present only when the factor is not 1 and the group holds parameters (its index is 2).
      With factor 1 the groups are the two of earlier versions (a run resumes across versions).

    Every trainable parameter is in exactly one group.
    """
    backbone_ids = {id(p) for p in model.backbone.parameters()}
    added_ids: set[int] = set()
    names = optim_cfg.new_modules if optim_cfg.new_module_lr_factor != 1.0 else []
    for name in names:
        module = getattr(model, name, None)
        if module is not None:
            added_ids |= {id(p) for p in module.parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in trainable if id(p) in backbone_ids], "lr": optim_cfg.lr * optim_cfg.backbone_lr_factor,
         "name": "backbone"},
        {"params": [p for p in trainable if id(p) not in backbone_ids | added_ids], "lr": optim_cfg.lr, "name": "new"},
    ]
    added = [p for p in trainable if id(p) in added_ids and id(p) not in backbone_ids]
    if added:
        groups.append({"params": added, "lr": optim_cfg.lr * optim_cfg.new_module_lr_factor, "name": "added"})
    return groups


def make_optimizer(model: torch.nn.Module, optim_cfg) -> torch.optim.SGD:
    """SGD (momentum, Nesterov, weight decay) over :func:`parameter_groups`."""
    return torch.optim.SGD(parameter_groups(model, optim_cfg), lr=optim_cfg.lr, momentum=optim_cfg.momentum,
                           nesterov=optim_cfg.nesterov, weight_decay=optim_cfg.weight_decay)


def clip_gradients(parameters, max_norm: float | None) -> float:
    """The L2 norm of all gradients of ``parameters`` together, measured before clipping; when
    ``max_norm`` is set, the gradients are scaled in place so that their norm is at most
    ``max_norm`` (``torch.nn.utils.clip_grad_norm_``)."""
    if max_norm is None:
        grads = [p.grad for p in parameters if p.grad is not None]
        return float(torch.nn.utils.get_total_norm(grads)) if grads else 0.0
    return float(torch.nn.utils.clip_grad_norm_(parameters, max_norm))
