"""Cross-modality identity sampler (the community code base's ``IdentitySampler``).

Every batch holds ``num_ids`` distinct identities, each with ``num_instances`` visible and
``num_instances`` infrared images drawn with replacement. The plan of an epoch is a pure
function of ``(seed, epoch)``, so it is rebuilt every epoch, identical on every rank, and a
resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CrossModalityBatch", "IdentitySampler"]


@dataclass(frozen=True)
class CrossModalityBatch:
    """Indices of one batch: ``visible`` and ``infrared`` ``(num_ids * num_instances,)`` into
    the two image lists, ``labels`` ``(num_ids * num_instances,)`` shared by both halves."""

    visible: np.ndarray
    infrared: np.ndarray
    labels: np.ndarray


class IdentitySampler:
    """Epoch plans of cross-modality batches.

    Args:
        visible_labels: ``(Nv,)`` label of every visible training image.
        infrared_labels: ``(Ni,)`` label of every infrared training image.
        num_ids: identities per batch (N, 8 in the recipe).
        num_instances: images per identity and modality (K, 4).
        batches_per_epoch: None for ``max(Nv, Ni) // (N * K) + 1``.
        seed: master seed.
    """

    def __init__(self, visible_labels, infrared_labels, num_ids: int = 8, num_instances: int = 4,
                 batches_per_epoch: int | None = None, seed: int = 0) -> None:
        vis = np.asarray(visible_labels, dtype=np.int64)
        ir = np.asarray(infrared_labels, dtype=np.int64)
        ids = np.unique(vis)
        if not np.array_equal(ids, np.unique(ir)):
            raise ValueError("visible and infrared training images must cover the same identities")
        if len(ids) < num_ids:
            raise ValueError(f"the training set has {len(ids)} identities, fewer than num_ids={num_ids} per batch")
        self.ids = ids
        self.visible_pos = {int(i): np.flatnonzero(vis == i) for i in ids}
        self.infrared_pos = {int(i): np.flatnonzero(ir == i) for i in ids}
        self.num_ids, self.num_instances, self.seed = num_ids, num_instances, seed
        self.batches_per_epoch = batches_per_epoch or max(len(vis), len(ir)) // (num_ids * num_instances) + 1

    @property
    def batch_size(self) -> int:
        """Images per batch, both modalities: ``2 * N * K``."""
        return 2 * self.num_ids * self.num_instances

    def epoch_plan(self, epoch: int) -> list[CrossModalityBatch]:
        """The batches of ``epoch`` (deterministic in ``(seed, epoch)``)."""
        rng = np.random.default_rng([self.seed, 2_147_483_647, epoch])
        plan = []
        k = self.num_instances
        for _ in range(self.batches_per_epoch):
            chosen = rng.choice(self.ids, self.num_ids, replace=False)
            vis = np.concatenate([rng.choice(self.visible_pos[int(i)], k) for i in chosen])
            ir = np.concatenate([rng.choice(self.infrared_pos[int(i)], k) for i in chosen])
            plan.append(CrossModalityBatch(vis, ir, np.repeat(chosen, k)))
        return plan

    def state_dict(self) -> dict:
        return {"seed": self.seed, "num_ids": self.num_ids, "num_instances": self.num_instances,
                "batches_per_epoch": self.batches_per_epoch}

    def load_state_dict(self, state: dict) -> None:
        for key in ("num_ids", "num_instances", "batches_per_epoch"):
            if state[key] != getattr(self, key):
                raise ValueError(f"sampler {key} differs from the checkpoint's ({getattr(self, key)} vs {state[key]})")
        self.seed = state["seed"]
