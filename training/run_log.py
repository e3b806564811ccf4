"""Per-run metrics: a JSON-lines log and a loss / accuracy plot (PNG)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from spot_edge.atomic import atomic_path, atomic_write_text

__all__ = ["MetricsLog", "plot_metrics"]


class MetricsLog:
    """Appends one JSON object per line to ``path`` (flushed each write; a line cut by an
    interruption is skipped when reading). Rewrites (:meth:`truncate_after_epoch`) are atomic."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        out = []
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a line cut by an interruption
                    if isinstance(record, dict):
                        out.append(record)
        return out

    def truncate_after_epoch(self, epoch: int) -> None:
        """Drop records of epochs > ``epoch`` (a resumed run rewrites them)."""
        records = [r for r in self.read() if r.get("epoch", -1) <= epoch]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in records))


def plot_metrics(records: list[dict[str, Any]], path: str | os.PathLike) -> None:
    """Loss (total, identity, triplet) and training accuracy per epoch, and test or validation
    rank-1 / mAP when present, to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r for r in records if r.get("kind") == "epoch"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    if epochs:
        x = [r["epoch"] + 1 for r in epochs]
        for key in ("total", "id_base", "triplet"):
            if key in epochs[0]:
                axes[0].plot(x, [r[key] for r in epochs], marker="o", label=key)
        for key in sorted(k for k in epochs[0] if k.startswith("acc_")):
            axes[1].plot(x, [r[key] for r in epochs], marker="o", label=f"train {key}")
    for kind, label in (("eval", "test"), ("val", "val")):
        for key in ("R-1", "mAP"):
            pts = [(r["epoch"] + 1, r[key]) for r in records if r.get("kind") == kind and key in r]
            if pts:
                axes[1].plot(*zip(*pts), marker="s", linestyle="--", label=f"{label} {key}")
    axes[0].set(title="loss", xlabel="epoch")
    axes[1].set(title="accuracy", xlabel="epoch", ylim=(0, 1))
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:  # the temporary name keeps the .png suffix
            fig.savefig(tmp, dpi=90, format="png")
    finally:
        plt.close(fig)
