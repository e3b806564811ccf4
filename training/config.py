"""Training configuration: every value of the recipe in one YAML file.

A file has the sections ``model``, ``data``, ``sampler``, ``augment``, ``loss``, ``optim`` and
``run``; unknown keys are errors (a typo must not silently fall back to a default). The
defaults are the paper's recipe plus the community code base's additions (Sec. IV-A and
``specs/spot-model.md``): SGD lr 0.1, 60 epochs, 8 ids x (4 visible + 4 infrared), pad-10 crop,
flip, random erasing, warm-up over 10 epochs, decays at 20 and 50, backbone lr x0.1,
momentum 0.9 Nesterov, weight decay 5e-4.

``model`` holds a SpotConfig preset name plus field overrides, e.g.
``{preset: spot-small, num_parts: 5}``; ``num_classes`` is filled from the training set.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DataConfig", "SamplerConfig", "AugmentConfig", "LossConfig", "OptimConfig", "RunConfig",
    "TrainConfig", "load_train_config", "apply_overrides",
]


@dataclass
class DataConfig:
    """Where the images and pose maps come from.

    Attributes:
        dataset: "sysu" (SYSU-MM01 layout, also the synthetic set) or "regdb".
        root: dataset root folder.
        regdb_split: RegDB split 1..10 (train on split t, evaluate on split t).
        heatmap_source: "keypoints" (ground-truth keypoints of a synthetic tree), "cache"
            (an existing cache, built elsewhere) or "none" (configurations without structure).
        heatmap_cache: cache folder; default ``<root>/heatmap_cache_<h>x<w>``.
        heatmap_size: ``[h, w]`` of the stored maps; default the model's ``preprocessing.heatmap_size``.
        heatmap_dtype: "uint8" or "float16".
        preload: decode and resize all training images into memory once.
        workers: DataLoader worker processes (0: load in the training process).
    """

    dataset: str = "sysu"
    root: str = ""
    regdb_split: int = 1
    heatmap_source: str = "keypoints"
    heatmap_cache: str | None = None
    heatmap_size: list[int] | None = None
    heatmap_dtype: str = "uint8"
    preload: bool = True
    workers: int = 0


@dataclass
class SamplerConfig:
    """Identity sampler: each batch ``num_ids`` identities x ``num_instances`` visible +
    ``num_instances`` infrared images, drawn with replacement, rebuilt every epoch.
    ``batches_per_epoch`` None: ``max(#visible, #infrared) // (num_ids * num_instances) + 1``
    (the community code base's epoch length)."""

    num_ids: int = 8
    num_instances: int = 4
    batches_per_epoch: int | None = None


@dataclass
class AugmentConfig:
    """Per-image augmentation, applied identically to image and pose maps.

    Attributes:
        flip: probability of a horizontal flip (maps flipped with ``flip_pose_maps``).
        pad: zero padding in input pixels before the random crop back to the input size
            (10 at 288x144 in the community code base).
        erasing: probability of random erasing (image only; erased pixels get random values).
        erasing_area: min / max fraction of the image area erased.
    """

    flip: float = 0.5
    pad: int = 10
    erasing: float = 0.5
    erasing_area: list[float] = field(default_factory=lambda: [0.02, 0.4])


@dataclass
class LossConfig:
    """Eq. 13: identity losses (weights from ``SpotConfig.loss_weights``) + triplet on "base".

    Attributes:
        triplet_margin: margin of the batch-hard triplet loss.
        triplet_weight: weight of the triplet term in L_B.
        label_smoothing: of every cross-entropy (0 in the paper).
    """

    triplet_margin: float = 0.3
    triplet_weight: float = 1.0
    label_smoothing: float = 0.0


@dataclass
class OptimConfig:
    """SGD with warm-up and step decays (per epoch)."""

    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    backbone_lr_factor: float = 0.1
    warmup_epochs: int = 10
    milestones: list[int] = field(default_factory=lambda: [20, 50])
    gamma: float = 0.1
    epochs: int = 60
    grad_clip: float | None = None


@dataclass
class RunConfig:
    """Run bookkeeping.

    Attributes:
        out_dir: run folder (checkpoints, metrics.jsonl, plot, evaluation JSON).
        seed: master seed (sampler, augmentation, initialisation).
        device: "auto" (CUDA when present), "cpu", "cuda", "cuda:1".
        imagenet_weights: local torchvision ResNet weights for the backbone (None: random init).
        eval_every: evaluate on the test protocol every n epochs (0: only at the end).
        eval_trials: SYSU trials used by the periodic evaluation (10 at the end).
        log_every: steps between progress updates of the metrics log.
        threads: torch CPU threads (0: leave torch's default).
        amp: bfloat16/float16 autocast on CUDA.
    """

    out_dir: str = "runs/spot"
    seed: int = 0
    device: str = "auto"
    imagenet_weights: str | None = None
    eval_every: int = 0
    eval_trials: int = 10
    log_every: int = 10
    threads: int = 0
    amp: bool = False


@dataclass
class TrainConfig:
    model: dict[str, Any] = field(default_factory=lambda: {"preset": "spot"})
    data: DataConfig = field(default_factory=DataConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        errors = []
        d, s, a, o = self.data, self.sampler, self.augment, self.optim
        if d.dataset not in ("sysu", "regdb"):
            errors.append(f"data.dataset must be 'sysu' or 'regdb', got {d.dataset!r}")
        if d.heatmap_source not in ("keypoints", "cache", "none"):
            errors.append(f"data.heatmap_source must be keypoints, cache or none, got {d.heatmap_source!r}")
        if d.heatmap_dtype not in ("uint8", "float16"):
            errors.append("data.heatmap_dtype must be uint8 or float16")
        if d.heatmap_size is not None and (len(d.heatmap_size) != 2 or min(d.heatmap_size) < 1):
            errors.append(f"data.heatmap_size must be [h, w], got {d.heatmap_size}")
        if s.num_ids < 2 or s.num_instances < 1:
            errors.append("sampler needs num_ids >= 2 (triplet negatives) and num_instances >= 1")
        if s.batches_per_epoch is not None and s.batches_per_epoch < 1:
            errors.append("sampler.batches_per_epoch must be >= 1")
        if not (0 <= a.flip <= 1 and 0 <= a.erasing <= 1) or a.pad < 0:
            errors.append("augment.flip and augment.erasing are probabilities; augment.pad >= 0")
        if len(a.erasing_area) != 2 or not 0 < a.erasing_area[0] <= a.erasing_area[1] < 1:
            errors.append("augment.erasing_area must be [min, max] with 0 < min <= max < 1")
        if o.lr <= 0 or o.epochs < 1 or o.warmup_epochs < 0 or o.backbone_lr_factor < 0:
            errors.append("optim: lr > 0, epochs >= 1, warmup_epochs >= 0, backbone_lr_factor >= 0")
        if list(o.milestones) != sorted(o.milestones):
            errors.append(f"optim.milestones must be increasing, got {o.milestones}")
        if not isinstance(self.model, dict):
            errors.append("model must be a mapping (preset name + SpotConfig overrides)")
        if errors:
            raise ValueError("invalid training config: " + "; ".join(errors))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        sections = {"data": DataConfig, "sampler": SamplerConfig, "augment": AugmentConfig,
                    "loss": LossConfig, "optim": OptimConfig, "run": RunConfig}
        unknown = sorted(set(data) - set(sections) - {"model"})
        if unknown:
            raise ValueError(f"unknown training config sections: {unknown}; known: model, {', '.join(sections)}")
        kwargs: dict[str, Any] = {"model": dict(data.get("model") or {"preset": "spot"})}
        for name, klass in sections.items():
            values = data.get(name) or {}
            if not isinstance(values, dict):
                raise ValueError(f"config section {name!r} must be a mapping")
            known = {f.name for f in dataclasses.fields(klass)}
            bad = sorted(set(values) - known)
            if bad:
                raise ValueError(f"unknown keys in config section {name!r}: {bad}; known: {sorted(known)}")
            kwargs[name] = klass(**values)
        return cls(**kwargs)

    def save(self, path: str | Path) -> None:
        import yaml

        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


def _parse_scalar(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` overrides (values parsed as YAML) to a config mapping."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for item in overrides:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ValueError(f"override {item!r} must look like section.key=value (e.g. optim.epochs=5)")
        key, value = item.split("=", 1)
        section, name = key.split(".", 1)
        out.setdefault(section, {})
        if not isinstance(out[section], dict):
            raise ValueError(f"cannot override {key}: {section} is not a section")
        out[section][name] = _parse_scalar(value)
    return out


def load_train_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML training config (or the defaults when ``path`` is None) and apply overrides."""
    import yaml

    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"training config not found: {path}")
        loaded = yaml.safe_load(path.read_text())
        if loaded is not None and not isinstance(loaded, dict):
            raise ValueError(f"{path} must hold a mapping of config sections")
        data = loaded or {}
    return TrainConfig.from_dict(apply_overrides(data, overrides or []))
