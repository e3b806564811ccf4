"""The SPOT training loop: eq. 13 losses, SGD recipe, exact resume, DDP, logs and plots.

``train(config)`` runs a whole training described by a :class:`TrainConfig` with a
:class:`Trainer` (one process's share of the run):

1. data: SYSU-MM01 layout (also the synthetic set) or RegDB split; pose-map cache (built
   from ground-truth keypoints when ``data.heatmap_source == "keypoints"``);
2. model: ``spot_edge.model.SPOT`` from a preset plus overrides, ``num_classes`` from the data;
3. optimisation: SGD (momentum, Nesterov, weight decay) with parameter groups (the ResNet
   backbone at ``backbone_lr_factor`` x lr, the modules of ``new_modules`` at
   ``new_module_lr_factor`` x lr, the rest at lr), linear warm-up then step decays per epoch
   (:class:`~spot_edge.training.optimizer.WarmupStepSchedule`), optional gradient clipping
   (``grad_clip``; the norm before clipping is logged as ``grad_norm``);
4. :meth:`Trainer.resume`: an interrupted run continues from the last finished epoch and
   bit for bit as if it had not stopped (every epoch reseeds its RNGs from ``(seed, epoch, rank)``);
5. :meth:`Trainer.run_epoch` then :meth:`Trainer.save`: the training state
   ``checkpoints/train-state.safetensors`` (no pickle, :mod:`~spot_edge.training.train_state`)
   and ``model.safetensors`` written atomically, a line in ``metrics.jsonl`` and ``metrics.png``;
6. at the end: the test protocol of the dataset (SYSU all + indoor, or the RegDB split in both
   directions), a table on stdout and ``results.json``: on the final epoch's weights
   (``run.select: final``) or on the best epoch on a validation split of training identities
   (``run.select: best-val``, :mod:`~spot_edge.training.selection`; ``selection.json`` says which).

Multi-GPU / multi-node: launch with ``torchrun``; each rank takes every ``world_size``-th batch
of the shared epoch plan, gradients are averaged by DistributedDataParallel (NCCL on CUDA,
gloo on CPU); rank 0 writes checkpoints, logs and evaluation.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

import torch

from spot_edge.training.config import TrainConfig
from spot_edge.training.data import ImageStore, TrainBatches
from spot_edge.training.datasets import TrainSet, hold_out_identities, regdb_train, sysu_train
from spot_edge.training.heatmap_cache import HeatmapCache, HeatmapCacheError, build_heatmap_cache, keypoint_source
from spot_edge.training.losses import SpotLoss
from spot_edge.training.optimizer import WarmupStepSchedule, clip_gradients, make_optimizer
from spot_edge.training.progress import Progress
from spot_edge.training.run_context import (RunContext, barrier, rng_state, seed_everything, set_rng_state,
                                            setup_context)
from spot_edge.training.run_log import MetricsLog, plot_metrics
from spot_edge.training.sampler import IdentitySampler
from spot_edge.training.selection import BestOnValidation
from spot_edge.training.train_state import (TRAIN_STATE, TrainStateError, load_train_state, refuse_legacy_state,
                                            save_train_state, train_state_epoch)

__all__ = ["Trainer", "RunContext", "WarmupStepSchedule", "build_spot_config", "make_optimizer", "prepare_heatmaps",
           "load_train_set", "train", "interrupted_message", "run_evaluation", "TRAIN_STATE", "MODEL_FILE"]

MODEL_FILE = "model.safetensors"
_SUMMARY_KEYS = ("R-1", "R-10", "mAP", "mINP")


def build_spot_config(model_section: dict[str, Any], num_classes: int):
    """SpotConfig from ``{preset: name, **overrides}`` (or plain fields), ``num_classes`` set."""
    from spot_edge.model import SpotConfig, preset

    values = dict(model_section)
    values.pop("num_classes", None)
    name = values.pop("preset", None)
    if name is not None:
        return preset(name, num_classes=num_classes, **values)
    return SpotConfig.from_dict({**values, "num_classes": num_classes})


def load_train_set(config: TrainConfig) -> TrainSet:
    d = config.data
    if not d.root:
        raise ValueError("data.root is not set: point it at a SYSU-MM01 / RegDB / synthetic dataset folder "
                         "(--set data.root=PATH)")
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
                    problems = [str(p) for p in cache.verify(required)] or None
            except HeatmapCacheError as exc:
                problems = [str(exc)]
        if problems:
            from spot_edge.training.synthetic_dataset import load_keypoints

            log(f"building pose-map cache {folder} ({problems[0]}{' ...' if len(problems) > 1 else ''})")
            keypoints = load_keypoints(root)
            build_heatmap_cache(folder, root, sorted(keypoints), keypoint_source(keypoints), size,
                                dtype=config.data.heatmap_dtype, source_name="keypoints")
    barrier(ctx)
    cache = HeatmapCache(folder, root)
    if tuple(cache.map_size) != tuple(size):
        raise HeatmapCacheError(f"heatmap cache {folder} stores {cache.map_size} maps, the config asks for {size}")
    cache.require_fresh(required, check_hash=False)
    return cache


class Trainer:
    """One process's share of a training run: data, model and optimiser built from ``config``;
    :meth:`resume` (or a fresh start), then :meth:`run_epoch` and :meth:`save` per epoch."""

    def __init__(self, config: TrainConfig, ctx: RunContext, say: Callable[[str], None]) -> None:
        from spot_edge.model import SPOT

        self.config, self.ctx, self.say = config, ctx, say
        self.out_dir = Path(config.run.out_dir)
        self.state_path = self.out_dir / TRAIN_STATE
        full_set = load_train_set(config)
        self.held_out: TrainSet | None = None  # the validation split (data.val_ids), never trained on
        self.train_set = full_set
        if config.data.val_ids:
            self.train_set, self.held_out = hold_out_identities(full_set, config.data.val_ids, config.data.val_seed)
        self.spot_config = build_spot_config(config.model, self.train_set.num_classes)
        required = full_set.visible.paths + full_set.infrared.paths
        self.cache = prepare_heatmaps(config, self.spot_config, required, ctx, say)
        spec = self.spot_config.preprocessing
        self.visible = ImageStore(self.train_set.visible.paths, spec, preload=config.data.preload)
        self.infrared = ImageStore(self.train_set.infrared.paths, spec, preload=config.data.preload)
        s = config.sampler
        self.sampler = IdentitySampler(self.train_set.visible.pids, self.train_set.infrared.pids, s.num_ids,
                                       s.num_instances, s.batches_per_epoch, config.run.seed)
        torch.manual_seed(config.run.seed)
        self.model = SPOT(self.spot_config, imagenet_weights=config.run.imagenet_weights).to(ctx.device)
        self.optimizer = make_optimizer(self.model, config.optim)
        o = config.optim
        self.schedule = WarmupStepSchedule(self.optimizer, o.warmup_epochs, o.milestones, o.gamma)
        self.criterion = SpotLoss(self.spot_config.loss_weights, config.loss.triplet_margin,
                                  config.loss.triplet_weight, config.loss.label_smoothing)
        self.log = MetricsLog(self.out_dir / "metrics.jsonl")
        self.selection = BestOnValidation(config.run.select_metric) if config.run.select == "best-val" else None
        self.start_epoch, self.history = 0, []
        self.net: torch.nn.Module = self.model

    # ------------------------------------------------------------------ resume / start
    def resume(self, allowed: bool = True) -> None:
        """Continue from the saved training state when ``allowed`` and present, else start fresh
        (``config.yaml`` written, an old metrics log removed). Wraps the model for DDP."""
        if allowed:
            refuse_legacy_state(self.out_dir)
        if allowed and self.state_path.is_file():
            self._load_state(load_train_state(self.state_path))
        elif self.ctx.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self.config.save(self.out_dir / "config.yaml")
            if self.log.path.exists():
                self.log.path.unlink()
        if self.ctx.distributed:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.ctx.device.index] if self.ctx.device.type == "cuda" else None)

    def _load_state(self, state: dict[str, Any]) -> None:
        from spot_edge.model import SpotConfig

        path = self.state_path
        try:
            saved = SpotConfig.from_dict(state["spot_config"])
        except (KeyError, TypeError, ValueError) as exc:
            raise TrainStateError(f"{path} holds no readable model configuration ({exc})") from None
        diffs = self.spot_config.differences(saved)
        if diffs:
            raise ValueError(f"cannot resume {path}: the model config changed ({sorted(diffs)}); "
                             "use another run.out_dir or the original config")
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.schedule.load_state_dict(state["schedule"])
            self.sampler.load_state_dict(state["sampler"])
            rngs = state["rng"]
            set_rng_state(rngs[min(self.ctx.rank, len(rngs) - 1)] if isinstance(rngs, list) else rngs)
            self.start_epoch, self.history = int(state["epoch"]), list(state["history"])
            if self.selection is not None:
                self.selection.load_state_dict(state["selection"])
        except (KeyError, TypeError, IndexError, RuntimeError) as exc:
            raise TrainStateError(f"cannot resume from {path}: it does not fit this run ({exc}); "
                                  "train with --no-resume or another run.out_dir") from None
        if self.ctx.is_main:
            self.log.truncate_after_epoch(self.start_epoch - 1)
        self.say(f"resumed {path} after epoch {self.start_epoch}")

    # ------------------------------------------------------------------ one epoch
    def run_epoch(self, epoch: int, progress: Progress) -> dict[str, Any]:
        """Train one epoch; returns its record (per-step means of the loss parts, averaged over
        ranks, lr, seconds, images/s)."""
        config, ctx = self.config, self.ctx
        seed_everything(config.run.seed, epoch, ctx.rank)
        self.schedule.set_epoch(epoch)
        batches = TrainBatches(self.train_set, self.visible, self.infrared, self.sampler, epoch, config.augment,
                               self.cache, config.run.seed, ctx.rank, ctx.world_size)
        loader = torch.utils.data.DataLoader(batches, batch_size=None, shuffle=False, num_workers=config.data.workers)
        task = progress.task(f"epoch {epoch + 1}/{config.optim.epochs}", len(batches))
        self.net.train()
        sums: dict[str, float] = {}
        seen, t0 = 0, time.perf_counter()
        for step, batch in enumerate(loader):
            parts = self._step(batch, epoch, step)
            seen += len(batch["images"])
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            rate = seen * ctx.world_size / max(time.perf_counter() - t0, 1e-9)
            progress.update(task, f"loss {parts['total']:.3f} acc {parts['acc_base']:.2f} {rate:.0f} img/s")
            if ctx.is_main and config.run.log_every and (step + 1) % config.run.log_every == 0:
                self.log.write({"kind": "step", "epoch": epoch, "step": step + 1,
                                "lr": self.optimizer.param_groups[1]["lr"], "images_per_s": rate, **parts})
        steps = max(len(batches), 1)
        means = {k: v / steps for k, v in sums.items()}
        if ctx.distributed:
            keys = sorted(means)
            t = torch.tensor([means[k] for k in keys], dtype=torch.float64, device=ctx.device)
            torch.distributed.all_reduce(t)
            means = {k: float(v) / ctx.world_size for k, v in zip(keys, t.tolist())}
        elapsed = time.perf_counter() - t0
        return {"kind": "epoch", "epoch": epoch, "lr": self.optimizer.param_groups[1]["lr"], "seconds": elapsed,
                "images_per_s": seen * ctx.world_size / max(elapsed, 1e-9), **means}

    def _step(self, batch: dict[str, torch.Tensor], epoch: int, step: int) -> dict[str, float]:
        """One optimisation step on a batch; returns the loss parts."""
        device = self.ctx.device
        images = batch["images"].to(device, non_blocking=True)
        labels = batch["labels"].to(device)
        modality = batch["modality"].to(device)
        maps = batch["heatmaps"].to(device) if "heatmaps" in batch else None
        amp = (torch.autocast("cuda", dtype=torch.bfloat16) if self.config.run.amp and device.type == "cuda"
               else contextlib.nullcontext())
        with amp:
            output = self.net(images, maps, modality)
        loss, parts = self.criterion(output, labels)
        if not math.isfinite(parts["total"]):
            raise FloatingPointError(f"loss became {parts['total']} at epoch {epoch + 1} step {step + 1}; "
                                     "lower optim.lr or enable optim.grad_clip")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        parts["grad_norm"] = clip_gradients(self.model.parameters(), self.config.optim.grad_clip)
        self.optimizer.step()
        return parts

    # ------------------------------------------------------------------ save
    def save(self, epoch: int, record: dict[str, Any]) -> None:
        """After ``epoch``: history, training state (every rank's RNG state), model file, log, plot."""
        from spot_edge.model import save_checkpoint

        self.history.append(record)
        ctx = self.ctx
        rngs: list[Any] = [None] * ctx.world_size
        if ctx.distributed:
            torch.distributed.all_gather_object(rngs, rng_state())
        else:
            rngs = [rng_state()]
        if not ctx.is_main:
            return
        self.log.write(record)
        save_train_state(self.state_path, {
            "epoch": epoch + 1, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(), "sampler": self.sampler.state_dict(), "rng": rngs,
            "history": self.history, "spot_config": self.spot_config.to_dict(), "train_config": self.config.to_dict(),
            **({"selection": self.selection.state_dict()} if self.selection is not None else {}),
        })
        save_checkpoint(self.model, self.out_dir / MODEL_FILE,
                        extra={"epoch": epoch + 1, "dataset": self.config.data.dataset})
        plot_metrics(self.log.read(), self.out_dir / "metrics.png")
        means = {k: record.get(k, float("nan")) for k in ("total", "id_base", "triplet", "acc_base")}
        self.say(f"epoch {epoch + 1}/{self.config.optim.epochs}: loss {means['total']:.3f} "
                 f"id {means['id_base']:.3f} tri {means['triplet']:.3f} acc {means['acc_base']:.3f} "
                 f"({record['images_per_s']:.0f} img/s)")

    # ------------------------------------------------------------------ evaluation
    def validate(self, epoch: int) -> dict[str, Any]:
        """The validation split after ``epoch`` (rank 0): logged; with ``select: best-val`` a new
        best epoch's weights are written to ``best.safetensors``. Call before :meth:`save`, so
        the choice is part of the epoch's training state."""
        from spot_edge.model import save_checkpoint
        from spot_edge.training.evaluation import ModelEmbedder, evaluate_held_out

        assert self.held_out is not None
        trials = range(self.config.run.eval_trials)
        results = evaluate_held_out(ModelEmbedder(self.model, self.cache), self.held_out, self.config.data.dataset,
                                    self.config.data.root, trials)
        self.log.write({"kind": "val", "epoch": epoch, **{k: results[k] for k in _SUMMARY_KEYS}})
        if self.selection is not None and self.selection.consider(epoch, results):
            save_checkpoint(self.model, self.selection.path(self.out_dir),
                            extra={"epoch": epoch + 1, "dataset": self.config.data.dataset,
                                   "selected_by": f"validation {self.selection.metric}"})
        self.say(f"validation after epoch {epoch + 1}: " + "  ".join(f"{k} {100 * results[k]:.2f}"
                                                                     for k in _SUMMARY_KEYS))
        return results

    def load_selected(self) -> dict[str, Any] | None:
        """Put the selected weights in the model (``select: best-val``); the choice's record."""
        if self.selection is None:
            return None
        from spot_edge.model import load_checkpoint

        if self.selection.epoch is None:
            raise RuntimeError("no epoch could be selected: every validation result was NaN")
        load_checkpoint(self.selection.path(self.out_dir), self.model)
        return self.selection.record()

    def evaluate(self, epoch: int, trials: int) -> dict[str, Any]:
        """The test protocol after ``epoch`` (rank 0): logged, plotted, printed."""
        from spot_edge.training.evaluation import format_table

        results = run_evaluation(self.config, self.model, self.cache, trials=trials)
        first = next(iter(results.values()))
        self.log.write({"kind": "eval", "epoch": epoch, **{k: first[k] for k in _SUMMARY_KEYS}})
        plot_metrics(self.log.read(), self.out_dir / "metrics.png")
        self.say(format_table(results))
        return results


def train(config: TrainConfig, resume: bool = True, max_epochs: int | None = None, show_progress: bool = True,
          evaluate_at_end: bool = True) -> dict[str, Any]:
    """Train (or resume) the run ``config.run.out_dir``; see the module docstring.

    Args:
        config: the training configuration.
        resume: continue from ``<out_dir>/checkpoints/train-state.safetensors`` when it exists.
        max_epochs: stop after this many epochs *in this call* (the schedule still follows
            ``optim.epochs``); used to split a run or to simulate an interruption.
        show_progress: rich progress bars on rank 0.
        evaluate_at_end: run the test protocol once ``optim.epochs`` are done.

    Returns:
        Summary: ``epochs_done``, ``history`` (per-epoch means), ``results`` (when evaluated),
        ``out_dir``.
    """
    if max_epochs is not None and max_epochs < 1:
        raise ValueError(f"max_epochs must be at least 1, got {max_epochs}")
    ctx = setup_context(config.run.device)
    try:
        if config.run.threads > 0:
            torch.set_num_threads(config.run.threads)
        progress = Progress(show_progress and ctx.is_main)
        trainer = Trainer(config, ctx, progress.log if ctx.is_main else (lambda message: None))
        trainer.resume(resume)
        total = config.optim.epochs
        stop = total if max_epochs is None else min(total, trainer.start_epoch + max_epochs)
        eval_every = config.run.eval_every
        with progress:
            for epoch in range(trainer.start_epoch, stop):
                record = trainer.run_epoch(epoch, progress)
                due = bool(eval_every) and (epoch + 1) % eval_every == 0
                if ctx.is_main and trainer.held_out is not None and (due or epoch + 1 == total):
                    trainer.validate(epoch)  # before save: the choice belongs to the epoch's state
                trainer.save(epoch, record)
                if ctx.is_main and trainer.held_out is None and due and epoch + 1 < total:
                    trainer.evaluate(epoch, config.run.eval_trials)
                barrier(ctx)
        summary: dict[str, Any] = {"epochs_done": stop, "history": trainer.history, "out_dir": str(trainer.out_dir)}
        if stop >= total and evaluate_at_end and ctx.is_main:
            from spot_edge.training.evaluation import save_results

            selection = trainer.load_selected()
            if selection is not None:
                save_results(selection, trainer.out_dir / "selection.json")
                trainer.log.write({"kind": "selection", **selection})
                summary["selection"] = selection
                trainer.say(f"test evaluation of the epoch chosen on the validation split: {selection['epoch'] + 1}")
            results = trainer.evaluate(stop - 1 if selection is None else selection["epoch"], trials=10)
            save_results(results, trainer.out_dir / "results.json")
            summary["results"] = results
        barrier(ctx)
        return summary
    finally:
        if ctx.distributed and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def interrupted_message(config: TrainConfig) -> str:
    """What an interrupted ``train`` tells the user: where the last checkpoint is."""
    state = Path(config.run.out_dir) / TRAIN_STATE
    epoch = train_state_epoch(state)
    if epoch is None:
        return f"training interrupted before the first epoch finished; nothing saved in {config.run.out_dir}"
    return (f"training interrupted; the checkpoint after epoch {epoch}/{config.optim.epochs} is {state} "
            "(run the same command again to resume)")


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
