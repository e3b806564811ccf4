"""``spot-edge demo``: the whole product on the embedded default, on a CPU, with no downloads.

Steps (each timed, all outputs under one results folder):

1. generate a small synthetic cross-modality set (SYSU-MM01 layout, with keypoints);
2. train the small SPOT configuration (ResNet-18, 128x64) for a few minutes;
   evaluate it with the community protocol (SYSU all-search and indoor-search, 10 trials);
3. export one fp32 ONNX graph per modality;
4. calibrate int8 activation ranges on training images and export one int8 (Q/DQ) graph per
   modality (:mod:`spot_edge.demo.graphs`);
5. compare both graphs (ONNX Runtime) with the PyTorch fp32 model on the protocol: cosine and
   R-1 / mAP / mINP; a graph far below the reference is flagged in ``metrics.md``;
6. enroll labelled visible and infrared test images into a gallery with the int8 graphs;
7. run the real-time pipeline on the int8 graphs on a generated visible/infrared video pair
   (pose from the generator's keypoints, as an external detector would supply them), matching
   each person against the other modality's gallery, and score the matches against the ground truth;
8. draw top-5 retrievals for a few infrared queries, a t-SNE of the test embeddings and the
   TPI part maps.

``metrics.md`` holds the protocol table, the parity table and the pipeline's scores; ``summary.json``
everything, with each step's wall time (``timings_s``) and CPU time (``cpu_s``, all threads and
child processes: divided by the wall time it shows how much of the machine the step had).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from spot_edge.atomic import atomic_write_json, atomic_write_text
from spot_edge.imageio import read_image
from spot_edge.modality import MODALITIES
from spot_edge.paths import user_path
from spot_edge.preprocessing import PreprocessSpec


@dataclass
class DemoConfig:
    """Sizes of the demo (the CLI's defaults). They finish in under 10 minutes on 2 free CPU cores
    (about 8.5 minutes measured; training is nine tenths of it).

    ``calibration_size``: training images per modality that calibrate the int8 graphs;
    ``parity_trials``: random galleries (1..10) of the graphs' parity protocol.

    ``out_dir`` is the results folder as the user gave it (relative to the working directory);
    :class:`DemoRunner` resolves it once.
    """

    out_dir: str = "spot-edge-demo"
    preset: str = "spot-small"
    num_train: int = 96
    num_test: int = 32
    images_per_camera: tuple[int, int] = (4, 6)
    epochs: int = 12
    batches_per_epoch: int = 24
    eval_trials: int = 10
    calibration_size: int = 128
    parity_trials: int = 3
    video_people: int = 4
    video_frames: int = 48
    seed: int = 0
    steps_done: list[str] = field(default_factory=list)


def _image_inputs(paths: list[str], data_root: Path, spec: PreprocessSpec) -> tuple[np.ndarray, np.ndarray]:
    """Normalised images ``(B, 3, H, W)`` and pose maps ``(B, 56, Hs, Ws)`` rendered from the
    generator's keypoints (what an external detector would give)."""
    from spot_edge.pose.render import render_pose_maps
    from spot_edge.training.synthetic_dataset import keypoints_for_image

    images, maps = [], []
    for path in paths:
        image = read_image(path)
        keypoints = keypoints_for_image(data_root, path)
        maps.append(render_pose_maps(keypoints, image.shape[:2], spec.heatmap_size))
        images.append(image)
    return spec.batch(images), np.stack(maps).astype(np.float32)


def _embed_paths(embedder, paths: list[str], modality: str, data_root: Path, batch: int = 64) -> np.ndarray:
    out = []
    for start in range(0, len(paths), batch):
        images, maps = _image_inputs(paths[start:start + batch], data_root, embedder.preprocessing)
        out.append(embedder.embed(images, maps, modality))
    return np.concatenate(out) if out else np.zeros((0, embedder.embedding_dim), np.float32)


def _box_iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def score_video_matches(events: list[dict[str, Any]], truth_path: str, source: str) -> dict[str, Any]:
    """Top-1 identity accuracy of the pipeline's events for ``source`` against the ground truth."""
    truth = {}
    with open(truth_path) as f:
        for line in f:
            row = json.loads(line)
            truth[row["frame"]] = row["people"]
    scored = correct = 0
    for ev in events:
        if ev.get("source") != source or not ev.get("top_k"):
            continue
        people = truth.get(ev.get("frame_index"), [])
        best = max(people, key=lambda p: _box_iou(p["box"], ev["box"]), default=None)
        if best is None or _box_iou(best["box"], ev["box"]) < 0.3:
            continue
        scored += 1
        correct += int(str(ev["top_k"][0]["identity"]) == str(best["pid"]))
    return {"people_scored": scored, "top1_correct": correct,
            "top1_accuracy": round(correct / scored, 4) if scored else None}


def check_pipeline_run(summary: dict[str, Any]) -> None:
    """Refuse a pipeline run on the generated videos that failed on any frame or found nobody:
    every frame and person there is generated, so either is a defect, never a result to score."""
    for source, stats in summary.get("sources", {}).items():
        if stats.get("errors") or not stats.get("events"):
            raise RuntimeError(
                f"the camera pipeline failed on the generated {source} video: {stats.get('errors', 0)} of "
                f"{stats.get('frames_read', 0)} frames failed, {stats.get('events', 0)} events "
                f"(last error: {stats.get('last_error')})")


class DemoRunner:
    """Runs the demo steps with a progress callback ``report(step, message)``."""

    def __init__(self, config: DemoConfig, report: Callable[[str, str], None] | None = None) -> None:
        self.config = config
        self.out = user_path(config.out_dir)   # resolved once: every step works with absolute paths
        self.report = report or (lambda step, message: None)
        self.timings: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.metrics_sections: list[str] = []
        self.summary: dict[str, Any] = {"config": asdict(config)}

    def _step(self, name: str, fn: Callable[[], Any]) -> Any:
        self.report(name, "started")
        start, cpu_start = time.perf_counter(), _cpu_seconds()
        result = fn()
        self.timings[name] = round(time.perf_counter() - start, 1)
        self.cpu[name] = round(_cpu_seconds() - cpu_start, 1)
        self.report(name, f"done in {self.timings[name]:.1f} s (CPU {self.cpu[name]:.1f} s)")
        return result

    # ------------------------------------------------------------------ steps
    def generate_data(self) -> Path:
        from spot_edge.training.synthetic_dataset import SyntheticConfig, generate_sysu_like

        c = self.config
        root = self.out / "data"
        if not (root / "synthetic.json").exists():
            generate_sysu_like(root, SyntheticConfig(num_train=c.num_train, num_val=0, num_test=c.num_test,
                                                     images_per_camera=c.images_per_camera, seed=c.seed),
                               workers=2)
        return root

    def train(self, data_root: Path) -> dict[str, Any]:
        from importlib import resources

        from spot_edge.training.config import load_train_config
        from spot_edge.training.loop import train

        c = self.config
        template = resources.files("spot_edge.training") / "configs" / "synthetic-small.yaml"
        with resources.as_file(template) as path:
            config = load_train_config(path, [
                f"model.preset={c.preset}", f"data.root={data_root}", f"run.out_dir={self.out / 'train'}",
                f"optim.epochs={c.epochs}", f"sampler.batches_per_epoch={c.batches_per_epoch}",
                f"run.eval_trials={c.eval_trials}", f"run.seed={c.seed}",
            ])
        return train(config, resume=True, show_progress=True, evaluate_at_end=True)

    def load_model(self):
        from spot_edge.model import load_checkpoint

        return load_checkpoint(self.out / "train" / "model.safetensors").eval()

    def evaluate_graphs(self, model, data_root: Path) -> dict[str, Any]:
        """Parity of the fp32 and int8 graphs with ``model``; flags a graph far off in metrics.md."""
        from spot_edge.demo.graphs import graph_parity, parity_warnings

        trials = self.config.parity_trials
        report = graph_parity(model, self.out / "onnx", data_root, trials)
        found = report.to_dict()
        warnings = parity_warnings(found)
        flags = "".join(f"\n**Warning**: {line}\n" for line in warnings)
        self._add_metrics(f"## Graphs against the PyTorch fp32 model (ONNX Runtime, CPU)\n\n"
                          f"Synthetic test split, SYSU-MM01 all-search protocol, {trials} random "
                          f"{'gallery' if trials == 1 else 'galleries'}; cosine of the embeddings to the "
                          f"reference, R-1 / mAP / mINP in %.\n\n{report.table()}\n{flags}")
        return {"report": found, "warnings": warnings, "trials": trials}

    def _add_metrics(self, section: str) -> None:
        """Append a section to metrics.md (rewritten whole each time: a failure later keeps it)."""
        self.metrics_sections.append(section.rstrip() + "\n")
        atomic_write_text(self.out / "metrics.md", "\n".join(self.metrics_sections))

    def enroll(self, embedder, data_root: Path):
        """Gallery of labelled test images: visible from cam1/cam2, infrared from cam3."""
        from spot_edge.gallery import Gallery
        from spot_edge.training.synthetic_identity import INFRARED_CAMERAS, VISIBLE_CAMERAS

        gallery = Gallery(embedder.embedding_dim, path=self.out / "gallery")
        ids = [int(x) for x in (data_root / "exp" / "test_id.txt").read_text().strip().split(",")]
        for modality, cams in (("visible", VISIBLE_CAMERAS[:2]), ("infrared", INFRARED_CAMERAS[:1])):
            paths, pids, cameras = [], [], []
            for pid in ids:
                for cam in cams:
                    folder = data_root / f"cam{cam}" / f"{pid:04d}"
                    for p in sorted(folder.glob("*.jpg"))[:2]:
                        paths.append(str(p))
                        pids.append(str(pid))
                        cameras.append(f"cam{cam}")
            gallery.add(_embed_paths(embedder, paths, modality, data_root), pids, modality, cameras, model=embedder)
        gallery.save(replace=True)   # the demo's own folder: a rerun replaces the previous run's gallery
        return gallery, ids

    def run_videos(self, embedder, gallery, identities: list[int], data_root: Path) -> dict[str, Any]:
        from spot_edge.demo.videos import VideoPairConfig, write_video_pair
        from spot_edge.pipeline.events import read_events
        from spot_edge.pipeline import CameraInput, KeypointFileSource, Pipeline, PipelineConfig, open_source
        from spot_edge.training.synthetic_identity import make_identity

        c = self.config
        rng = np.random.default_rng(c.seed)
        chosen = sorted(rng.choice(identities, size=min(c.video_people, len(identities)), replace=False).tolist())
        people = [make_identity(pid, c.seed) for pid in chosen]
        videos = write_video_pair(self.out / "videos", people, VideoPairConfig(frames=c.video_frames, seed=c.seed))
        inputs = [CameraInput(m, m, open_source(videos[m]["video"]), KeypointFileSource(videos[m]["keypoints"]))
                  for m in MODALITIES]
        pipeline = Pipeline(inputs, embedder, gallery, PipelineConfig(frames_every=8, threshold=0.0),
                            output_dir=self.out / "pipeline")
        summary = pipeline.run(handle_signals=True).to_dict()
        check_pipeline_run(summary)
        events = read_events(self.out / "pipeline" / "events.jsonl")
        return {"people_in_videos": chosen, "pipeline": summary,
                "matching": {m: score_video_matches(events, videos[m]["truth"], m) for m in MODALITIES}}

    def pictures(self, model, embedder, data_root: Path) -> dict[str, str]:
        from spot_edge.training.datasets import sysu_gallery, sysu_query
        from spot_edge.visualize.parts import save_parts_panel
        from spot_edge.visualize.retrieval import save_retrieval_panel
        from spot_edge.visualize.tsne import plot_tsne

        out = self.out / "pictures"
        out.mkdir(parents=True, exist_ok=True)
        q_paths, q_ids, _ = sysu_query(data_root, "all")
        g_paths, g_ids, _ = sysu_gallery(data_root, "all", 0)
        q_emb = _embed_paths(embedder, list(q_paths), "infrared", data_root)
        g_emb = _embed_paths(embedder, list(g_paths), "visible", data_root)
        pick = np.random.default_rng(self.config.seed).choice(len(q_paths), size=min(6, len(q_paths)), replace=False)
        files = {"retrieval": str(save_retrieval_panel(
            out / "top5_infrared_queries.png", [q_paths[i] for i in pick], [q_ids[i] for i in pick], q_emb[pick],
            list(g_paths), list(g_ids), g_emb, k=5))}
        keep = np.isin(q_ids, np.unique(q_ids)[:12])
        keep_g = np.isin(g_ids, np.unique(q_ids)[:12])
        embeddings = np.concatenate([q_emb[keep], g_emb[keep_g]])
        ids = np.concatenate([np.asarray(q_ids)[keep], np.asarray(g_ids)[keep_g]])
        modalities = ["infrared"] * int(keep.sum()) + ["visible"] * int(keep_g.sum())
        files["tsne"] = str(plot_tsne(embeddings, ids, modalities, out / "tsne.png"))
        if model.tpi is not None:
            sel = [q_paths[i] for i in pick[:4]]
            _, maps = _image_inputs(sel, data_root, model.config.preprocessing)
            files["parts"] = str(save_parts_panel(out / "part_maps.png", model,
                                                  [read_image(p) for p in sel], maps, "infrared"))
        return files

    # ------------------------------------------------------------------ all
    def run(self) -> dict[str, Any]:
        from spot_edge.backends import create_embedder
        from spot_edge.demo.graphs import INT8_PREFIX, export_fp32, export_int8
        from spot_edge.training.evaluation import format_table

        c = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        data_root = self._step("1/8 generate synthetic data", self.generate_data)
        trained = self._step("2/8 train SPOT-small and evaluate (protocol)", lambda: self.train(data_root))
        results = trained.get("results") or {}
        self.summary["evaluation"] = results
        self._add_metrics(f"## Protocol (PyTorch fp32, {c.eval_trials} trials, %)\n\n```text\n"
                          f"{format_table(results) if results else 'no evaluation'}\n```\n")
        model = self.load_model()
        onnx_dir = self.out / "onnx"
        self.summary["onnx"] = {m: str(p) for m, p in self._step(
            "3/8 export ONNX fp32", lambda: export_fp32(model, onnx_dir)).items()}
        self.summary["onnx_int8"] = {m: str(p) for m, p in self._step(
            f"4/8 calibrate ({c.calibration_size} images per modality) and export ONNX int8",
            lambda: export_int8(model, onnx_dir, data_root, c.calibration_size)).items()}
        self.summary["parity"] = self._step(
            f"5/8 parity of the graphs with PyTorch (protocol, {c.parity_trials} trials)",
            lambda: self.evaluate_graphs(model, data_root))
        embedder = create_embedder(onnx_dir / INT8_PREFIX, backend="onnxruntime")   # the deployable graph
        self.summary["backend"] = embedder.name
        self.summary["pipeline_embedder"] = embedder.describe()
        gallery, ids = self._step("6/8 enroll gallery (int8 graphs)", lambda: self.enroll(embedder, data_root))
        videos = self._step("7/8 run the pipeline (int8 graphs) on a visible/infrared video pair",
                            lambda: self.run_videos(embedder, gallery, ids, data_root))
        self.summary["videos"] = videos
        self._add_metrics(_pipeline_section(videos["matching"], embedder.describe(), len(ids)))
        self.summary["pictures"] = self._step("8/8 pictures", lambda: self.pictures(model, embedder, data_root))
        self.summary["timings_s"] = self.timings
        self.summary["cpu_s"] = self.cpu
        self.summary["total_s"] = round(sum(self.timings.values()), 1)
        atomic_write_json(self.out / "summary.json", self.summary)
        return self.summary


def _pipeline_section(matching: dict[str, dict[str, Any]], backend: dict[str, Any], enrolled: int) -> str:
    lines = [f"## Camera pipeline ({backend['backend']} {backend.get('precision', '')}, generated video pair)\n",
             f"Top-1 identity of each person box against the other modality's gallery ({enrolled} identities):\n"]
    lines += [f"- {source} camera: {score['top1_accuracy']} over {score['people_scored']} people-frames"
              for source, score in matching.items()]
    return "\n".join(lines) + "\n"


def _cpu_seconds() -> float:
    """CPU time of this process (all threads) and of its finished child processes."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system
