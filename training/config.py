"""Training configuration: every value of the recipe in one YAML file.

A file has the sections ``model``, ``data``, ``sampler``, ``augment``, ``loss``, ``optim`` and
``run``; unknown keys are errors (a typo must not silently fall back to a default), and so are
values of the wrong type (``optim.lr must be a number, got 'fast'``) or out of range
(``optim.epochs must be at least 1, got 0``): refused, never clamped. The defaults are the
paper's recipe plus the community code base's additions (Sec. IV-A): SGD lr 0.1, 60 epochs,
8 ids x (4 visible + 4 infrared), pad-10 crop, flip, random erasing, warm-up over 10 epochs,
decays at 20 and 50, backbone lr x0.1, momentum 0.9 Nesterov, weight decay 5e-4.

``model`` holds a SpotConfig preset name plus field overrides, e.g.
``{preset: spot-small, num_parts: 5}``; ``num_classes`` is filled from the training set.

Paths (``data.root``, ``data.heatmap_cache``, ``run.out_dir``, ``run.imagenet_weights``) are
paths as the user typed them: relative paths are relative to the current working directory
(not to the YAML file), whether they come from the YAML file or from a ``--set`` override.
They are resolved once, when the configuration is made (:func:`spot_edge.paths.user_path`);
everything after works with absolute paths, and the ``config.yaml`` saved in a run folder
records them absolute.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from spot_edge.errors import SpotEdgeError
from spot_edge.paths import user_path

__all__ = [
    "DataConfig", "SamplerConfig", "AugmentConfig", "LossConfig", "OptimConfig", "RunConfig",
    "TrainConfig", "TrainConfigError", "load_train_config", "apply_overrides", "PATH_KEYS", "NEW_MODULES",
]


class TrainConfigError(SpotEdgeError, ValueError):
    """A training configuration is malformed: unknown key, wrong type, value out of range,
    YAML syntax error. The message names the key (``optim.lr``) and what is expected."""


@dataclass
class DataConfig:
    """Where the images and pose maps come from.

    Attributes:
        dataset: "sysu" (SYSU-MM01 layout, also the synthetic set) or "regdb".
        root: dataset root folder.
        regdb_split: RegDB split 1..10 (train on split t, evaluate on split t).
        heatmap_source: "keypoints" (ground-truth keypoints of a synthetic tree), "cache"
            (an existing cache, built elsewhere) or "none" (configurations without structure).
        heatmap_cache: cache folder; default ``<root>/heatmap_cache_<h>x<w>_<dtype>``.
        heatmap_size: ``[h, w]`` of the stored maps; default the model's ``preprocessing.heatmap_size``.
        heatmap_dtype: "uint8" or "float16".
        preload: decode and resize all training images into memory once.
        workers: DataLoader worker processes (0: load in the training process).
        val_ids: training identities held out as a validation split (0: none). They are
            drawn from the training identities (train + val lists for SYSU-MM01, the split's
            training list for RegDB) with ``val_seed``, never trained on, and evaluated with
            the test protocol's own code (``run.select``). The test identities are never used.
        val_seed: seed of the draw of the validation identities (independent of ``run.seed``,
            so runs of several seeds share one validation split).
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
    val_ids: int = 0
    val_seed: int = 0


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
        erasing: probability of random erasing (image only).
        erasing_area: min / max fraction of the image area erased.
        erasing_fill: what the erased rectangle holds: ``"noise"`` (random N(0, 1) values in
            normalised units, i.e. random colours) or ``"mean"`` (the mean colour of the
            normalisation, 0 after normalisation: Zhong et al.'s mean fill. The ReID strong
            baseline writes the ImageNet mean into the *normalised* image, about 0.45
            instead of 0; this is the fill it intends).
    """

    flip: float = 0.5
    pad: int = 10
    erasing: float = 0.5
    erasing_area: list[float] = field(default_factory=lambda: [0.02, 0.4])
    erasing_fill: str = "noise"


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
    """SGD with warm-up and step decays (per epoch), three parameter groups, optional clipping.

    Attributes:
        lr: base learning rate: the rate of the BN necks and identity classifiers (and of
            every module not named below).
        momentum, nesterov, weight_decay: of SGD.
        backbone_lr_factor: lr multiplier of the ResNet backbone (both modality paths and the
            shared layer3/layer4); 0.1 with ImageNet initialisation (AGW, DDAG).
        new_module_lr_factor: lr multiplier of the modules named in ``new_modules`` (added to
            the network and trained from scratch). 1.0: full lr, as the BN necks. 0.1 with
            ``backbone_lr_factor`` 0.1: the AGW grouping, where every block but the BN neck and
            the classifier (its non-local blocks included) trains at 0.1 x lr.
        new_modules: which modules ``new_module_lr_factor`` applies to, among ``relation`` (the
            relation network N_r), ``injection`` (structure injection), ``asr``, ``tpi`` and
            ``fusion``; modules a configuration does not build are ignored.
        warmup_epochs, milestones, gamma, epochs: linear warm-up, then decays by ``gamma``
            at each milestone epoch.
        grad_clip: gradient clipping: the largest L2 norm of all gradients together
            (``torch.nn.utils.clip_grad_norm_``) before each step; larger gradients are scaled
            down to it. None: no clipping. The norm before clipping is logged as
            ``grad_norm`` either way.
    """

    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    backbone_lr_factor: float = 0.1
    new_module_lr_factor: float = 1.0
    new_modules: list[str] = field(default_factory=lambda: ["relation", "injection", "asr", "tpi", "fusion"])
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
        eval_every: evaluate every n epochs (0: only at the end): on the validation split
            when there is one (``data.val_ids``), else on the test protocol (then a progress
            curve only, never a selection).
        eval_trials: SYSU gallery trials of the periodic evaluation (the final test: 10).
        select: which weights the final test evaluates. ``"final"``: the last epoch's (the
            default; no choice is made on any score). ``"best-val"``: the epoch with the best
            ``select_metric`` on the validation split (``data.val_ids`` held-out training
            identities, evaluated every ``eval_every`` epochs and after the last); the test
            split is evaluated once, at the end, on those weights (``best.safetensors``).
        select_metric: ``"mAP"``, ``"R-1"`` or ``"mINP"`` on the validation split (ties keep
            the earlier epoch).
        log_every: steps between progress updates of the metrics log (0: none).
        threads: torch CPU threads (0: leave torch's default).
        amp: bfloat16 autocast on CUDA.
    """

    out_dir: str = "runs/spot"
    seed: int = 0
    device: str = "auto"
    imagenet_weights: str | None = None
    eval_every: int = 0
    eval_trials: int = 10
    select: str = "final"
    select_metric: str = "mAP"
    log_every: int = 10
    threads: int = 0
    amp: bool = False


SECTIONS: dict[str, type] = {"data": DataConfig, "sampler": SamplerConfig, "augment": AugmentConfig,
                             "loss": LossConfig, "optim": OptimConfig, "run": RunConfig}

#: Configuration values that are paths (resolved against the working directory once).
PATH_KEYS = (("data", "root"), ("data", "heatmap_cache"), ("run", "out_dir"), ("run", "imagenet_weights"))


def _at_least(minimum: float) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v >= minimum), f"at least {minimum:g}"


def _positive() -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v > 0), "positive"


def _within(lo: float, hi: float, hi_open: bool = False) -> tuple[Callable[[Any], bool], str]:
    if hi_open:
        return (lambda v: lo <= v < hi), f"in [{lo:g}, {hi:g})"
    return (lambda v: lo <= v <= hi), f"in [{lo:g}, {hi:g}]"


#: Ranges of the numeric values: ``(section, key) -> (accepts, "expected range in words")``;
#: None values (optional keys) are not range-checked.
RANGES: dict[tuple[str, str], tuple[Callable[[Any], bool], str]] = {
    ("data", "regdb_split"): _within(1, 10),
    ("data", "workers"): _at_least(0),
    ("data", "val_ids"): _at_least(0),
    ("data", "val_seed"): _at_least(0),
    ("sampler", "num_ids"): _at_least(2),  # the triplet loss needs negatives in every batch
    ("sampler", "num_instances"): _at_least(1),
    ("sampler", "batches_per_epoch"): _at_least(1),
    ("augment", "flip"): _within(0, 1),
    ("augment", "pad"): _at_least(0),
    ("augment", "erasing"): _within(0, 1),
    ("loss", "triplet_margin"): _at_least(0),
    ("loss", "triplet_weight"): _at_least(0),
    ("loss", "label_smoothing"): _within(0, 1, hi_open=True),
    ("optim", "lr"): _positive(),
    ("optim", "momentum"): _within(0, 1, hi_open=True),
    ("optim", "weight_decay"): _at_least(0),
    ("optim", "backbone_lr_factor"): _at_least(0),
    ("optim", "new_module_lr_factor"): _at_least(0),
    ("optim", "warmup_epochs"): _at_least(0),
    ("optim", "gamma"): _positive(),
    ("optim", "epochs"): _at_least(1),
    ("optim", "grad_clip"): _positive(),
    ("run", "seed"): _at_least(0),
    ("run", "eval_every"): _at_least(0),
    ("run", "eval_trials"): _at_least(1),
    ("run", "log_every"): _at_least(0),
    ("run", "threads"): _at_least(0),
}

CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("data", "dataset"): ("sysu", "regdb"),
    ("data", "heatmap_source"): ("keypoints", "cache", "none"),
    ("data", "heatmap_dtype"): ("uint8", "float16"),
    ("augment", "erasing_fill"): ("noise", "mean"),
    ("run", "select"): ("final", "best-val"),
    ("run", "select_metric"): ("mAP", "R-1", "mINP"),
}

#: Modules ``optim.new_modules`` may name (attributes of ``spot_edge.model.SPOT``).
NEW_MODULES = ("relation", "injection", "asr", "tpi", "fusion")


def _value_problems(section: str, values: dict[str, Any]) -> list[str]:
    """Range and choice problems of one (well-typed) section."""
    problems = []
    for key, value in values.items():
        if value is None:
            continue
        if (section, key) in CHOICES and value not in CHOICES[(section, key)]:
            problems.append(f"{section}.{key} must be one of {', '.join(CHOICES[(section, key)])}, got {value!r}")
        if (section, key) in RANGES:
            accepts, words = RANGES[(section, key)]
            if isinstance(value, float) and not math.isfinite(value):
                problems.append(f"{section}.{key} must be a finite number, got {value!r}")
            elif not accepts(value):
                problems.append(f"{section}.{key} must be {words}, got {value!r}")
    return problems


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
        self._resolve_paths()

    def _resolve_paths(self) -> None:
        for section, key in PATH_KEYS:
            part = getattr(self, section)
            value = getattr(part, key)
            if value:  # "" (data.root unset) and None stay as they are
                setattr(part, key, str(user_path(value)))

    def validate(self) -> None:
        """Raise :class:`TrainConfigError` naming every wrong key (type first, then range)."""
        from spot_edge.model.config_checks import field_type_errors

        types = []
        for name, klass in SECTIONS.items():
            types += field_type_errors(klass, dataclasses.asdict(getattr(self, name)), prefix=f"{name}.")
        if not isinstance(self.model, dict):
            types.append(f"model must be a mapping (a preset name and SpotConfig overrides), got {self.model!r}")
        if types:
            raise TrainConfigError("invalid training config: " + "; ".join(types))
        errors = []
        for name in SECTIONS:
            errors += _value_problems(name, dataclasses.asdict(getattr(self, name)))
        d, a, o = self.data, self.augment, self.optim
        if d.heatmap_size is not None and (len(d.heatmap_size) != 2 or min(d.heatmap_size) < 1):
            errors.append(f"data.heatmap_size must be [h, w] with h, w >= 1, got {d.heatmap_size}")
        if len(a.erasing_area) != 2 or not 0 < a.erasing_area[0] <= a.erasing_area[1] < 1:
            errors.append(f"augment.erasing_area must be [min, max] with 0 < min <= max < 1, got {a.erasing_area}")
        if list(o.milestones) != sorted(o.milestones) or any(m < 0 for m in o.milestones):
            errors.append(f"optim.milestones must be increasing epochs >= 0, got {o.milestones}")
        if o.nesterov and not o.momentum > 0:
            errors.append("optim.nesterov needs optim.momentum > 0 (set optim.nesterov=false)")
        unknown_modules = [m for m in o.new_modules if m not in NEW_MODULES]
        if unknown_modules or len(set(o.new_modules)) != len(o.new_modules):
            errors.append(f"optim.new_modules must name distinct modules among {', '.join(NEW_MODULES)}, "
                          f"got {o.new_modules}")
        r = self.run
        if r.select == "best-val":
            if d.val_ids < 2:
                errors.append(f"run.select 'best-val' needs a validation split: data.val_ids >= 2, got {d.val_ids}")
            if r.eval_every < 1:
                errors.append("run.select 'best-val' needs run.eval_every >= 1 (how often the validation "
                              "split is evaluated)")
        errors += _model_problems(self.model)
        if errors:
            raise TrainConfigError("invalid training config: " + "; ".join(errors))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """A configuration from a mapping of sections (unknown sections and keys refused)."""
        if not isinstance(data, dict):
            raise TrainConfigError(f"a training config must be a mapping of sections, got {data!r}")
        unknown = sorted(set(data) - set(SECTIONS) - {"model"})
        if unknown:
            raise TrainConfigError(f"unknown training config sections: {', '.join(map(str, unknown))}; "
                                   f"known: model, {', '.join(SECTIONS)}")
        model = data.get("model")
        kwargs: dict[str, Any] = {"model": dict(model) if isinstance(model, dict) else
                                  ({"preset": "spot"} if model is None else model)}
        for name, klass in SECTIONS.items():
            values = data.get(name)
            values = {} if values is None else values
            if not isinstance(values, dict):
                raise TrainConfigError(f"config section {name!r} must be a mapping of keys, got {values!r}")
            known = [f.name for f in dataclasses.fields(klass)]
            bad = sorted(str(k) for k in set(values) - set(known))
            if bad:
                raise TrainConfigError(f"unknown keys in config section {name!r}: "
                                       f"{', '.join(f'{name}.{k}' for k in bad)}; known: {', '.join(known)}")
            kwargs[name] = klass(**values)
        return cls(**kwargs)

    def save(self, path: str | Path) -> None:
        import yaml

        from spot_edge.atomic import atomic_write_text

        atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))


def _model_problems(model: dict[str, Any]) -> list[str]:
    """Problems of the ``model`` section, found by building its SpotConfig (any class count)."""
    from spot_edge.model.config import SpotConfig, preset
    from spot_edge.model.config_checks import ConfigError, field_type_errors

    values = dict(model)
    values.pop("num_classes", None)
    name = values.pop("preset", None)
    problems = field_type_errors(SpotConfig, values, prefix="model.")
    known = {f.name for f in dataclasses.fields(SpotConfig)}
    unknown = sorted(str(k) for k in set(values) - known)
    if unknown:
        problems.append(f"unknown keys in config section 'model': {', '.join(f'model.{k}' for k in unknown)}; "
                        f"known: preset, {', '.join(sorted(known - {'num_classes'}))}")
    if name is not None and not isinstance(name, str):
        problems.append(f"model.preset must be a string (a preset name), got {name!r}")
    if problems:
        return problems
    try:
        if name is not None:
            preset(name, num_classes=1, **values)
        else:
            SpotConfig(**{**values, "num_classes": 1})
    except ConfigError as exc:
        return [f"model: {exc}"]
    return []


def _parse_value(item: str, text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise TrainConfigError(f"--set {item}: the value is not valid YAML ({problem})") from None


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` overrides (values parsed as YAML) to a config mapping.

    Dotted keys reach nested mappings (``model.preprocessing.height=64``).
    """
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for item in overrides:
        key, sep, value = item.partition("=")
        names = key.strip().split(".")
        if not sep or len(names) < 2 or not all(names):
            raise TrainConfigError(f"override {item!r} must look like section.key=value (e.g. optim.epochs=5)")
        target = out
        for depth, name in enumerate(names[:-1]):
            current = target.get(name)
            if current is None:
                current = target[name] = {}
            elif not isinstance(current, dict):
                raise TrainConfigError(f"cannot override {key}: {'.'.join(names[:depth + 1])} is not a section")
            else:
                current = target[name] = dict(current)
            target = current
        target[names[-1]] = _parse_value(item, value)
    return out


def load_train_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML training config (or the defaults when ``path`` is None) and apply overrides.

    Relative paths inside (and in ``overrides``) are relative to the current working directory.
    """
    from spot_edge.model.config_checks import read_config_file

    data: dict[str, Any] = {}
    if path is not None:
        loaded = read_config_file(user_path(path))
        if loaded is not None and not isinstance(loaded, dict):
            raise TrainConfigError(f"{path} must hold a mapping of config sections (model, data, optim...)")
        data = loaded or {}
    return TrainConfig.from_dict(apply_overrides(data, overrides or []))
