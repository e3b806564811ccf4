"""The SPOT training loop: eq. 13 losses, SGD recipe, exact resume, DDP, logs and plots.

``train(config)`` runs a whole training described by a :class:`TrainConfig`:

1. data: SYSU-MM01 layout (also the synthetic set) or RegDB split; pose-map cache (built
   from ground-truth keypoints when ``data.heatmap_source == "keypoints"``);
2. model: ``spot_edge.model.SPOT`` from a preset plus overrides, ``num_classes`` from the data;
3. optimisation: SGD (momentum, Nesterov, weight decay) with two parameter groups (the
   ResNet backbone at ``backbone_lr_factor`` x lr, everything new at lr), linear warm-up then
   step decays per epoch (:class:`WarmupStepSchedule`);
4. every epoch: a checkpoint ``checkpoints/last.pt`` written atomically (model, optimizer,
   schedule, sampler and RNG states, history) plus ``model.safetensors``; a metrics line in
   ``metrics.jsonl`` and ``metrics.png``; an interrupted run resumes from the last finished
   epoch and continues bit-for-bit as if it had not stopped (every epoch reseeds its RNGs
   from ``(seed, epoch, rank)``);
5. at the end: the test protocol of the dataset (SYSU all + indoor, or the RegDB split in both
   directions), a table on stdout and ``results.json``.

Multi-GPU / multi-node: launch with ``torchrun``; each rank takes every ``world_size``-th batch
of the shared epoch plan, gradients are averaged by DistributedDataParallel (NCCL on CUDA,
gloo on CPU); rank 0 writes checkpoints, logs and evaluation.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from spot_edge.training.config import TrainConfig
from spot_edge.training.data import ImageStore, TrainBatches
from spot_edge.training.datasets import TrainSet, regdb_train, sysu_train
from spot_edge.training.heatmap_cache import HeatmapCache, HeatmapCacheError, build_heatmap_cache, keypoint_source
from spot_edge.training.losses import SpotLoss
from spot_edge.training.run_log import MetricsLog, plot_metrics
from spot_edge.training.sampler import IdentitySampler

__all__ = ["RunContext", "WarmupStepSchedule", "build_spot_config", "make_optimizer", "prepare_heatmaps",
           "load_train_set", "train", "TRAIN_STATE", "MODEL_FILE"]

TRAIN_STATE = "checkpoints/last.pt"
MODEL_FILE = "model.safetensors"
STATE_FORMAT = "spot-edge/train-state-v1"


@dataclass(frozen=True)
class RunContext:
    """Where this process runs: ``rank`` of ``world_size``, its ``device``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_context(device: str = "auto") -> RunContext:
    """Read the torchrun environment and initialise the process group when ``WORLD_SIZE > 1``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"run.device={device!r} but CUDA is not available; use run.device=cpu")
        if dev.index is None:
            dev = torch.device("cuda", local if world > 1 else 0)
        torch.cuda.set_device(dev)
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend)
    return RunContext(rank, world, local, dev)


def _barrier(ctx: RunContext) -> None:
    if ctx.distributed:
        torch.distributed.barrier()


# --------------------------------------------------------------------------- pieces


def build_spot_config(model_section: dict[str, Any], num_classes: int):
    """SpotConfig from ``{preset: name, **overrides}`` (or plain fields), ``num_classes`` set."""
    from spot_edge.model import SpotConfig, preset

    values = dict(model_section)
    values.pop("num_classes", None)
    name = values.pop("preset", None)
    if name is not None:
        return preset(name, num_classes=num_classes, **values)
    return SpotConfig.from_dict({**values, "num_classes": num_classes})


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


def load_train_set(config: TrainConfig) -> TrainSet:
    d = config.data
    if not d.root:
        raise ValueError("data.root is not set: point it at a SYSU-MM01 / RegDB / synthetic dataset folder")
    return sysu_train(d.root) if d.dataset == "sysu" else regdb_train(d.root, d.regdb_split)


def heatmap_settings(config: TrainConfig, spot_config) -> tuple[str, tuple[int, int]]:
    """``(cache folder, map size)`` of a run."""
    spec = spot_config.preprocessing
    size = tuple(config.data.heatmap_size or spec.heatmap_size)  # default: the model's PreprocessSpec
    folder = config.data.heatmap_cache or os.path.join(config.data.root,
                                                       f"heatmap_cache_{size[0]}x{size[1]}_{config.data.heatmap_dtype}")
    return folder, size  # type: ignore[return-value]


def prepare_heatmaps(config: TrainConfig, spot_config, required: list[str], ctx: RunContext = RunContext(),
                     log: Callable[[str], None] = print) -> HeatmapCache | None:
    """Open (or, for ``heatmap_source: keypoints``, build on rank 0) the pose-map cache.

    Returns None when the model reads no pose maps. Raises :class:`HeatmapCacheError` when
    the cache misses images of ``required`` or is stale and cannot be rebuilt here.
    """
    if not spot_config.needs_pose_maps:
        return None
    source = config.data.heatmap_source
    if source == "none":
        raise ValueError("this model configuration reads pose maps but data.heatmap_source is 'none'")
    folder, size = heatmap_settings(config, spot_config)
    root = config.data.root
    if source == "keypoints" and ctx.is_main:
        problems: list[str] | None = ["first use: rendering the ground-truth keypoints"]
        if Path(folder).exists():
            try:
                cache = HeatmapCache(folder, root)
                if tuple(cache.map_size) != tuple(size):
                    problems = [f"map size {cache.map_size} != {size}"]
                else:
                    problems = cache.verify(required) or None
            except HeatmapCacheError as exc:
                problems = [str(exc)]
        if problems:
            from spot_edge.training.synthetic_dataset import load_keypoints

            log(f"building pose-map cache {folder} ({problems[0]}{' ...' if len(problems) > 1 else ''})")
            keypoints = load_keypoints(root)
            build_heatmap_cache(folder, root, sorted(keypoints), keypoint_source(keypoints), size,
                                dtype=config.data.heatmap_dtype, source_name="keypoints")
    _barrier(ctx)
    cache = HeatmapCache(folder, root)
    if tuple(cache.map_size) != tuple(size):
        raise HeatmapCacheError(f"heatmap cache {folder} stores {cache.map_size} maps, the config asks for {size}")
    cache.require_fresh(required, check_hash=False)
    return cache


def _seed_everything(seed: int, epoch: int, rank: int) -> None:
    s = int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _atomic_torch_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- progress


class _Progress:
    """A rich progress bar with loss and throughput (silent when disabled)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn())

    def __enter__(self) -> "_Progress":
        if self._progress:
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress:
            self._progress.__exit__(*exc)

    def task(self, description: str, total: int) -> Any:
        return self._progress.add_task(description, total=total, info="") if self._progress else None

    def update(self, task: Any, info: str, advance: int = 1) -> None:
        if self._progress and task is not None:
            self._progress.update(task, advance=advance, info=info)

    def log(self, message: str) -> None:
        if self._progress:
            self._progress.console.print(message)
        elif self.enabled:
            print(message)


# --------------------------------------------------------------------------- training


def train(config: TrainConfig, resume: bool = True, max_epochs: int | None = None, show_progress: bool = True,
          evaluate_at_end: bool = True) -> dict[str, Any]:
    """Train (or resume) the run ``config.run.out_dir``; see the module docstring.

    Args:
        config: the training configuration.
        resume: continue from ``<out_dir>/checkpoints/last.pt`` when it exists.
        max_epochs: stop after this many epochs *in this call* (the schedule still follows
            ``optim.epochs``); used to split a run or to simulate an interruption.
        show_progress: rich progress bars on rank 0.
        evaluate_at_end: run the test protocol once ``optim.epochs`` are done.

    Returns:
        Summary: ``epochs_done``, ``history`` (per-epoch means), ``results`` (when evaluated),
        ``out_dir``.
    """
    from spot_edge.model import SPOT, save_checkpoint

    ctx = setup_context(config.run.device)
    if config.run.threads > 0:
        torch.set_num_threads(config.run.threads)
    out_dir = Path(config.run.out_dir)
    progress = _Progress(show_progress and ctx.is_main)
    say = progress.log if ctx.is_main else (lambda message: None)
    try:
        train_set = load_train_set(config)
        spot_config = build_spot_config(config.model, train_set.num_classes)
        cache = prepare_heatmaps(config, spot_config, train_set.visible.paths + train_set.infrared.paths, ctx, say)
        spec = spot_config.preprocessing
        visible = ImageStore(train_set.visible.paths, spec, preload=config.data.preload)
        infrared = ImageStore(train_set.infrared.paths, spec, preload=config.data.preload)
        sampler = IdentitySampler(train_set.visible.pids, train_set.infrared.pids, config.sampler.num_ids,
                                  config.sampler.num_instances, config.sampler.batches_per_epoch, config.run.seed)

        torch.manual_seed(config.run.seed)
        model = SPOT(spot_config, imagenet_weights=config.run.imagenet_weights).to(ctx.device)
        optimizer = make_optimizer(model, config.optim)
        schedule = WarmupStepSchedule(optimizer, config.optim.warmup_epochs, config.optim.milestones, config.optim.gamma)
        criterion = SpotLoss(spot_config.loss_weights, config.loss.triplet_margin, config.loss.triplet_weight,
                             config.loss.label_smoothing)
        log = MetricsLog(out_dir / "metrics.jsonl")

        start_epoch, history = 0, []
        state_path = out_dir / TRAIN_STATE
        if resume and state_path.is_file():
            state = torch.load(state_path, map_location="cpu", weights_only=False)
            if state.get("format") != STATE_FORMAT:
                raise ValueError(f"{state_path} is not a spot-edge training state")
            from spot_edge.model import SpotConfig

            saved = SpotConfig.from_dict(state["spot_config"])
            diffs = spot_config.differences(saved)
            if diffs:
                raise ValueError(f"cannot resume {state_path}: the model config changed ({sorted(diffs)}); "
                                 "use another run.out_dir or the original config")
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
            sampler.load_state_dict(state["sampler"])
            _set_rng_state(state["rng"][min(ctx.rank, len(state["rng"]) - 1)] if isinstance(state["rng"], list) else state["rng"])
            start_epoch, history = state["epoch"], list(state["history"])
            if ctx.is_main:
                log.truncate_after_epoch(start_epoch - 1)
            say(f"resumed {state_path} after epoch {start_epoch}")
        elif ctx.is_main:
            out_dir.mkdir(parents=True, exist_ok=True)
            config.save(out_dir / "config.yaml")
            if log.path.exists():
                log.path.unlink()

        net: torch.nn.Module = model
        if ctx.distributed:
            net = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)

        total_epochs = config.optim.epochs
        stop = total_epochs if max_epochs is None else min(total_epochs, start_epoch + max_epochs)
        amp = (torch.autocast("cuda", dtype=torch.bfloat16) if config.run.amp and ctx.device.type == "cuda"
               else contextlib.nullcontext())
        with progress:
            for epoch in range(start_epoch, stop):
                _seed_everything(config.run.seed, epoch, ctx.rank)
                schedule.set_epoch(epoch)
                batches = TrainBatches(train_set, visible, infrared, sampler, epoch, config.augment, cache,
                                       config.run.seed, ctx.rank, ctx.world_size)
                loader = torch.utils.data.DataLoader(batches, batch_size=None, shuffle=False,
                                                     num_workers=config.data.workers)
                task = progress.task(f"epoch {epoch + 1}/{total_epochs}", len(batches))
                net.train()
                sums: dict[str, float] = {}
                seen, t0 = 0, time.perf_counter()
                for step, batch in enumerate(loader):
                    images = batch["images"].to(ctx.device, non_blocking=True)
                    labels = batch["labels"].to(ctx.device)
                    modality = batch["modality"].to(ctx.device)
                    maps = batch["heatmaps"].to(ctx.device) if "heatmaps" in batch else None
                    with amp:
                        output = net(images, maps, modality)
                    loss, parts = criterion(output, labels)
                    if not math.isfinite(parts["total"]):
                        raise FloatingPointError(f"loss became {parts['total']} at epoch {epoch + 1} step {step + 1}; "
                                                 "lower optim.lr or enable optim.grad_clip")
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if config.optim.grad_clip:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
                    optimizer.step()
                    seen += len(images)
                    for k, v in parts.items():
                        sums[k] = sums.get(k, 0.0) + v
                    rate = seen * ctx.world_size / max(time.perf_counter() - t0, 1e-9)
                    progress.update(task, f"loss {parts['total']:.3f} acc {parts['acc_base']:.2f} {rate:.0f} img/s")
                    if ctx.is_main and config.run.log_every and (step + 1) % config.run.log_every == 0:
                        log.write({"kind": "step", "epoch": epoch, "step": step + 1, "lr": optimizer.param_groups[1]["lr"],
                                   "images_per_s": rate, **parts})
                steps = max(len(batches), 1)
                means = {k: v / steps for k, v in sums.items()}
                if ctx.distributed:
                    keys = sorted(means)
                    t = torch.tensor([means[k] for k in keys], dtype=torch.float64, device=ctx.device)
                    torch.distributed.all_reduce(t)
                    means = {k: float(v) / ctx.world_size for k, v in zip(keys, t.tolist())}
                elapsed = time.perf_counter() - t0
                record = {"kind": "epoch", "epoch": epoch, "lr": optimizer.param_groups[1]["lr"], "seconds": elapsed,
                          "images_per_s": seen * ctx.world_size / max(elapsed, 1e-9), **means}
                history.append(record)
                rngs = [None] * ctx.world_size
                if ctx.distributed:
                    torch.distributed.all_gather_object(rngs, _rng_state())
                else:
                    rngs = [_rng_state()]
                if ctx.is_main:
                    log.write(record)
                    _atomic_torch_save({
                        "format": STATE_FORMAT, "epoch": epoch + 1, "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                        "sampler": sampler.state_dict(), "rng": rngs, "history": history,
                        "spot_config": spot_config.to_dict(), "train_config": config.to_dict(),
                    }, state_path)
                    save_checkpoint(model, out_dir / MODEL_FILE, extra={"epoch": epoch + 1, "dataset": config.data.dataset})
                    plot_metrics(log.read(), out_dir / "metrics.png")
                    say(f"epoch {epoch + 1}/{total_epochs}: loss {means.get('total', float('nan')):.3f} "
                        f"id {means.get('id_base', float('nan')):.3f} tri {means.get('triplet', float('nan')):.3f} "
                        f"acc {means.get('acc_base', float('nan')):.3f} ({record['images_per_s']:.0f} img/s)")
                    if config.run.eval_every and (epoch + 1) % config.run.eval_every == 0 and epoch + 1 < total_epochs:
                        results = run_evaluation(config, model, cache, trials=config.run.eval_trials)
                        first = next(iter(results.values()))
                        log.write({"kind": "eval", "epoch": epoch, **{k: first[k] for k in ("R-1", "R-10", "mAP", "mINP")}})
                        plot_metrics(log.read(), out_dir / "metrics.png")
                        say(_table(results))
                _barrier(ctx)
        done = stop
        summary: dict[str, Any] = {"epochs_done": done, "history": history, "out_dir": str(out_dir)}
        if done >= total_epochs and evaluate_at_end and ctx.is_main:
            results = run_evaluation(config, model, cache, trials=10)
            from spot_edge.training.evaluation import save_results

            save_results(results, out_dir / "results.json")
            log.write({"kind": "eval", "epoch": done - 1, **{k: next(iter(results.values()))[k]
                                                             for k in ("R-1", "R-10", "mAP", "mINP")}})
            plot_metrics(log.read(), out_dir / "metrics.png")
            say(_table(results))
            summary["results"] = results
        _barrier(ctx)
        return summary
    finally:
        if ctx.distributed and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _table(results: dict[str, Any]) -> str:
    from spot_edge.training.evaluation import format_table

    return format_table(results)


def run_evaluation(config: TrainConfig, model, cache: HeatmapCache | None, trials: int = 10) -> dict[str, Any]:
    """The dataset's test protocol for a model in memory: SYSU all + indoor (``trials``
    galleries) or the RegDB split of the config in both directions."""
    from spot_edge.training.evaluation import ModelEmbedder, evaluate_regdb, evaluate_sysu

    embed = ModelEmbedder(model, cache)
    root = config.data.root
    if config.data.dataset == "sysu":
        return {"SYSU-MM01 all-search": evaluate_sysu(embed, root, "all", range(trials)),
                "SYSU-MM01 indoor-search": evaluate_sysu(embed, root, "indoor", range(trials))}
    split = config.data.regdb_split
    results = evaluate_regdb(lambda s: embed, root, splits=[split])
    return {f"RegDB {d} (split {split})": r for d, r in results.items()}
