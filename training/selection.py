"""Model selection on a validation split (``run.select``), never on the test split.

With ``data.val_ids`` > 0 the trainer holds that many training identities out
(:func:`~spot_edge.training.datasets.hold_out_identities`) and evaluates them with the test
protocol's code (:func:`~spot_edge.training.evaluation.evaluate_held_out`) every
``run.eval_every`` epochs and after the last. With ``run.select: best-val``,
:class:`BestOnValidation` keeps the weights of the best epoch (``best.safetensors``) and the
test split is evaluated once, at the end, on them. The published figures of the community code
bases are the best epoch by *test* rank-1, an optimistic figure this never computes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

__all__ = ["BestOnValidation", "BEST_MODEL_FILE"]

BEST_MODEL_FILE = "best.safetensors"


class BestOnValidation:
    """The best epoch so far by ``metric`` on the validation split (a larger value is better;
    a tie keeps the earlier epoch). Its state (a JSON-able dict) travels in the training state."""

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.epoch: int | None = None
        self.value: float | None = None

    def consider(self, epoch: int, results: dict[str, Any]) -> bool:
        """Record the validation ``results`` after ``epoch`` (0-based); True when it is the new best."""
        value = float(results[self.metric])
        if not math.isfinite(value):
            return False
        if self.value is None or value > self.value:
            self.epoch, self.value = epoch, value
            return True
        return False

    def record(self) -> dict[str, Any]:
        """What ``selection.json`` and the metrics log say about the choice."""
        return {"select": "best-val", "metric": self.metric, "epoch": self.epoch, "value": self.value,
                "weights": BEST_MODEL_FILE}

    def state_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "epoch": self.epoch, "value": self.value}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.metric, self.epoch, self.value = state["metric"], state["epoch"], state["value"]

    def path(self, out_dir: str | Path) -> Path:
        return Path(out_dir) / BEST_MODEL_FILE
