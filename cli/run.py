"""``spot-edge run`` (the real-time pipeline), ``spot-edge gallery ...`` and ``spot-edge match``.

Wired into the main app like the other top-level modules: ``app.registered_commands`` holds
``run`` and ``match``, ``app.registered_groups`` holds ``gallery`` (enroll / list / remove / calibrate).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from spot_edge.cli.common import CliError, console, friendly_errors, print_json

app = typer.Typer(help="Real-time matching, the gallery, one-off matching.")
gallery_app = typer.Typer(help="A gallery of enrolled / observed people (embeddings + identity, modality, "
                               "camera, time).", no_args_is_help=True)
app.add_typer(gallery_app, name="gallery")

MODALITY_HELP = "visible or infrared."


# ----------------------------------------------------------------------------- shared helpers


def _load_embedder(model: str, backend: str, device: str, batch: Optional[int] = None):
    try:
        from spot_edge.backends import create_embedder
    except ImportError as exc:  # pragma: no cover - the backends package ships with spot-edge
        raise CliError(f"the SPOT backends are unavailable: {exc}") from exc
    if not model:
        raise CliError("give the SPOT model with --model (a checkpoint, an ONNX export or TensorRT engine(s))")
    from spot_edge.backends.sources import classify

    runs_engine = backend == "tensorrt" or (backend == "auto" and classify(model) == "engine")
    options = {"max_batch": batch} if batch and not runs_engine else {}  # engines: batch from their profiles
    return create_embedder(model, backend=backend, device=device, **options)


def _check_modality(modality: str) -> str:
    from spot_edge.gallery import check_modality

    return check_modality(modality)


def _embed_image_folder(folder: Path, embedder, modality: str, pose_weights: Optional[Path]):
    """Person crops of a folder -> ``(N, D)`` embeddings, the file names and ``labels.csv`` rows.

    Pose maps come from ``<image>.npy`` beside each image (heatmaps or keypoints, see
    ``spot_edge.backends.image_folder``), or from the OpenPose network run on each crop
    (``--pose-weights``).
    """
    import numpy as np

    from spot_edge.backends.image_folder import list_images, load_image_folder, read_labels

    if pose_weights is None:
        data = load_image_folder(folder, embedder.preprocessing, getattr(embedder, "num_pose_maps", 56))
        return embedder.embed(data.images, data.heatmaps, modality), data.files, data.labels
    import cv2

    from spot_edge.pipeline.pose_sources import OpenPoseSource, Person, PoseResult
    from spot_edge.pipeline.sources import as_bgr_frame
    from spot_edge.pipeline.stages import crop_frame

    pose = OpenPoseSource.from_weights(pose_weights, max_height=None)
    images, heatmaps, files = [], [], []
    for path in list_images(folder):
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise ValueError(f"cannot read image {path} (corrupt or not an image)")
        image = as_bgr_frame(raw)
        maps = pose.estimator(image)[0].float().cpu().numpy()
        h, w = image.shape[:2]
        whole = PoseResult(people=[Person(box=np.array([0, 0, w, h], np.float32))], maps=maps, stride=8.0)
        im, hm = crop_frame(image, whole, embedder.preprocessing)
        images.append(im)
        heatmaps.append(hm)
        files.append(path.name)
    emb = embedder.embed(np.concatenate(images), np.concatenate(heatmaps), modality)
    return emb, files, read_labels(folder)


def _load_embedding_file(path: Path):
    """``(N, D)`` embeddings and per-row metadata from ``.npy`` (+ ``.npy.json`` of ``spot-edge embed``)
    or ``.npz`` (``embeddings`` and optional ``identities``, ``modalities``, ``cameras``)."""
    import numpy as np

    if not path.exists():
        raise FileNotFoundError(f"embedding file not found: {path}")
    meta: dict[str, list] = {}
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            if "embeddings" not in data:
                raise ValueError(f"{path} has no 'embeddings' array (has {sorted(data.files)})")
            emb = data["embeddings"]
            for key in ("identities", "modalities", "cameras", "files"):
                if key in data:
                    meta[key] = [str(v) for v in data[key].tolist()]
    else:
        emb = np.load(path, allow_pickle=False)
        sidecar = path.with_name(path.name + ".json")
        if sidecar.exists():
            info = json.loads(sidecar.read_text())
            if "files" in info:
                meta["files"] = list(info["files"])
            if "modality" in info:
                meta["modalities"] = [info["modality"]] * len(emb)
    emb = np.asarray(emb, np.float32)
    if emb.ndim != 2:
        raise ValueError(f"{path} holds shape {emb.shape}; expected (N, D) embeddings")
    for key, values in meta.items():
        if len(values) != len(emb):
            raise ValueError(f"{path}: {len(values)} {key} for {len(emb)} embeddings")
    return emb, meta


def _identities_from(meta: dict, labels, identity: Optional[str], n: int) -> list[str]:
    if identity:
        return [identity] * n
    if "identities" in meta:
        return meta["identities"]
    if labels and "files" in meta:
        missing = [f for f in meta["files"] if f not in labels]
        if missing:
            raise ValueError(f"labels.csv has no row for {missing[:3]}")
        return [labels[f]["pid"] for f in meta["files"]]
    raise CliError("say who this is: --identity NAME, or a labels.csv (file,pid,...) beside the images, or "
                   "'identities' in the .npz")


def _configure_logging(verbose: bool) -> None:
    from rich.logging import RichHandler

    logger = logging.getLogger("spot_edge.pipeline")
    if not any(isinstance(h, RichHandler) for h in logger.handlers):
        logger.addHandler(RichHandler(console=console, show_path=False, show_time=True))
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    logger.propagate = False


# ----------------------------------------------------------------------------- spot-edge run


def _status_table(pipe, started: float) -> Table:
    table = Table(title=f"spot-edge run  ({time.perf_counter() - started:.0f}s, Ctrl-C to stop)")
    for col in ("source", "status", "read", "processed", "dropped", "people", "matches", "reconnects"):
        table.add_column(col, justify="left" if col in ("source", "status") else "right")
    for inp in pipe.inputs:
        c = pipe.counters.get(inp.name)
        table.add_row(inp.name if inp.name == inp.modality else f"{inp.name} ({inp.modality})", c.status, str(c.frames_read), str(c.frames_processed),
                      str(c.frames_dropped), str(c.people), str(c.matches), str(c.reconnects))
    return table


@app.command("run")
def run(
    visible: Optional[str] = typer.Option(None, "--visible", help="Visible source: video file, image folder, "
                                          "USB camera index (0), Jetson CSI camera (csi://0?width=1280&height=720"
                                          "&fps=30), RTSP URL or GStreamer pipeline ('... ! appsink')."),
    infrared: Optional[str] = typer.Option(None, "--infrared", help="Infrared source (same kinds as --visible)."),
    model: str = typer.Option("", "--model", "-m", help="SPOT model: checkpoint, ONNX export (file/prefix/dir) or "
                              "TensorRT engine(s)."),
    backend: str = typer.Option("auto", help="auto, pytorch, onnxruntime, tensorrt."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:N."),
    pose_weights: Optional[Path] = typer.Option(None, "--pose-weights", help="OpenPose COCO body weights "
                                                "(body_pose_model.pth or pose_iter_440000.caffemodel)."),
    visible_keypoints: Optional[Path] = typer.Option(None, "--visible-keypoints", help="Keypoints of the visible "
                                                     "source from another detector (JSON lines per frame)."),
    infrared_keypoints: Optional[Path] = typer.Option(None, "--infrared-keypoints", help="Same for infrared."),
    pose_height: int = typer.Option(368, help="Frames are downscaled to this height for the OpenPose network."),
    gallery: Optional[Path] = typer.Option(None, "--gallery", "-g", help="Gallery directory to match against "
                                           "(created if missing)."),
    observe: bool = typer.Option(True, "--observe/--no-observe", help="Add what is seen to the gallery (needs "
                                 "--gallery), so each camera's people are found by the other."),
    threshold: Optional[float] = typer.Option(None, help="Similarity needed for a match (default: the gallery's "
                                              "calibrated threshold, else 0.5)."),
    top_k: int = typer.Option(5, "--top-k", help="Gallery entries reported per person."),
    batch: int = typer.Option(32, help="Most person crops per embedder call."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default runs/run-<time>)."),
    video: bool = typer.Option(True, "--video/--no-video", help="Write annotated_<source>.avi."),
    frames_every: int = typer.Option(0, help="Also write every n-th annotated frame as PNG (0: never)."),
    only_matches: bool = typer.Option(False, help="Write events only for matched people."),
    realtime: bool = typer.Option(False, help="Play files at their frame rate, dropping frames when behind "
                                  "(as with a camera); default: process every frame of a file."),
    max_seconds: Optional[float] = typer.Option(None, help="Stop after this many seconds."),
    max_frames: Optional[int] = typer.Option(None, help="Stop each source after this many frames."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No live status table."),
    as_json: bool = typer.Option(False, "--json", help="Print the run summary as JSON on stdout."),
) -> None:
    """Match people between a visible and an infrared camera in real time.

    Per frame: pose on the full frame, people, crops of image and pose maps, SPOT embeddings
    (batched), search of the other modality's gallery entries, JSON-lines events. Frames are
    dropped (and counted) when the pipeline is behind; dropped cameras are reconnected with
    back-off; Ctrl-C stops cleanly and saves the gallery. Writes events.jsonl, annotated videos
    and stats.json (per-stage latency p50/p90/p99) into --out.

    Examples:

      spot-edge run --visible 0 --infrared "rtsp://cam-ir/stream" -m exports/spot --pose-weights body_pose_model.pth -g gallery/

      spot-edge run --visible vis.avi --visible-keypoints vis.jsonl --infrared ir.avi --infrared-keypoints ir.jsonl -m spot.onnx -g gallery/ -o runs/demo
    """
    from rich.live import Live

    from spot_edge.gallery import Gallery
    from spot_edge.pipeline import Pipeline, PipelineConfig, build_inputs

    with friendly_errors():
        _configure_logging(verbose=False)
        with console.status("opening the sources..."):
            inputs = build_inputs(visible, infrared, visible_keypoints, infrared_keypoints, pose_weights,
                                  pose_height=pose_height,
                                  pose_device=device if device.startswith(("cpu", "cuda")) else "auto")
        with console.status("loading the SPOT model..."):
            embedder = _load_embedder(model, backend, device, batch)
        g = Gallery.open(gallery, embedding_dim=embedder.embedding_dim) if gallery is not None else None
        out_dir = out or Path("runs") / time.strftime("run-%Y%m%d-%H%M%S")
        config = PipelineConfig(top_k=top_k, threshold=threshold, max_batch=batch, realtime=realtime,
                                observe=observe and g is not None, write_video=video, frames_every=frames_every,
                                only_matches=only_matches, max_seconds=max_seconds, max_frames=max_frames)
        pipe = Pipeline(inputs, embedder, g, config, output_dir=out_dir)
        if g is not None and g.threshold is None and threshold is None:
            console.print("[yellow]the gallery has no calibrated threshold; using 0.5 "
                          "(calibrate with `spot-edge gallery calibrate`)[/]")
        started = time.perf_counter()
        if quiet or as_json:
            summary = pipe.run()
        else:
            import threading

            # run() installs the signal handlers; the live table refreshes from a helper thread.
            done = threading.Event()

            def refresh(live):
                while not done.wait(0.5):
                    live.update(_status_table(pipe, started))

            with Live(_status_table(pipe, started), console=console, auto_refresh=False) as live:
                t = threading.Thread(target=refresh, args=(live,), daemon=True)
                t.start()
                try:
                    summary = pipe.run()
                finally:
                    done.set()
                    t.join()
                    live.update(_status_table(pipe, started), refresh=True)
            console.print()
        if as_json:
            print_json(summary.to_dict())
        else:
            console.print(pipe.stats.table())
            console.print(f"{summary.events} events -> {summary.outputs.get('events')}; statistics -> "
                          f"{summary.outputs.get('stats')}" + (f"; gallery: {summary.gallery_entries} entries "
                                                              f"({'saved' if summary.gallery_saved else 'unchanged'})"
                                                              if g is not None else ""))
            if summary.interrupted:
                console.print("interrupted: shut down cleanly")
        if summary.errors:  # a source that failed for good, a gallery that could not be saved...
            raise CliError("; ".join(summary.errors), code=1)


# ----------------------------------------------------------------------------- spot-edge gallery


@gallery_app.command("enroll")
def gallery_enroll(
    gallery: Path = typer.Argument(..., help="Gallery directory (created if missing)."),
    images: Optional[Path] = typer.Option(None, "--images", help="Folder of person crops (pose maps from .npy "
                                          "files beside them, or --pose-weights)."),
    embeddings: Optional[Path] = typer.Option(None, "--embeddings", help="Precomputed embeddings: .npy (from "
                                              "`spot-edge embed`) or .npz with 'embeddings' [+ 'identities']."),
    identity: Optional[str] = typer.Option(None, "--identity", "-i", help="Identity of every image (default: "
                                           "labels.csv pid / the .npz identities)."),
    modality: str = typer.Option("visible", "--modality", help=MODALITY_HELP),
    camera: str = typer.Option("", help="Camera name stored with the entries."),
    model: str = typer.Option("", "--model", "-m", help="SPOT model (needed with --images)."),
    backend: str = typer.Option("auto", help="auto, pytorch, onnxruntime, tensorrt."),
    device: str = typer.Option("auto", help="auto, cpu, cuda."),
    pose_weights: Optional[Path] = typer.Option(None, "--pose-weights", help="OpenPose weights, run on each crop."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Add people to a gallery (atomic write; safe with other readers and writers).

    Examples:

      spot-edge gallery enroll gallery/ --images crops/alice --identity alice --modality visible -m exports/spot

      spot-edge gallery enroll gallery/ --embeddings crops.npy --modality infrared --identity bob
    """
    from spot_edge.gallery import Gallery

    with friendly_errors():
        _check_modality(modality)
        if (images is None) == (embeddings is None):
            raise CliError("give exactly one of --images FOLDER or --embeddings FILE")
        labels = None
        if images is not None:
            embedder = _load_embedder(model, backend, device)
            with console.status(f"embedding {images}..."):
                emb, files, labels = _embed_image_folder(images, embedder, modality, pose_weights)
            meta = {"files": files}
        else:
            emb, meta = _load_embedding_file(embeddings)
        ids = _identities_from(meta, labels, identity, len(emb))
        modalities = meta.get("modalities", [modality] * len(emb))
        thumbs = [str((images / f).resolve()) for f in meta["files"]] if images is not None else None
        with Gallery.transaction(gallery, embedding_dim=emb.shape[1]) as g:
            new = g.add(emb, identities=ids, modality=modalities, camera=meta.get("cameras", camera),
                        thumbnails=thumbs)
            total = len(g)
    result = {"gallery": str(gallery), "added": len(new), "entries": total, "identities": sorted(set(ids))}
    if as_json:
        print_json(result)
    else:
        console.print(f"added {len(new)} entries ({', '.join(result['identities'][:10])}) -> {gallery} "
                      f"({total} entries)")


@gallery_app.command("list")
def gallery_list(
    gallery: Path = typer.Argument(..., help="Gallery directory."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Identities, entries per modality and the calibrated threshold.

    Example: spot-edge gallery list gallery/
    """
    from spot_edge.gallery import Gallery

    with friendly_errors():
        summary = Gallery.load(gallery).summary()
    if as_json:
        print_json(summary)
        return
    table = Table(title=f"{gallery}: {summary['entries']} entries, {summary['embedding_dim']}-d")
    for col in ("identity", "visible", "infrared"):
        table.add_column(col, justify="left" if col == "identity" else "right")
    for ident, counts in sorted(summary["identities"].items()):
        table.add_row(ident, str(counts["visible"]), str(counts["infrared"]))
    console.print(table)
    cal = summary["calibration"]
    console.print(f"threshold: {cal['threshold']:.4f} (FMR {cal['fmr']:.4f}, TMR {cal['tmr']:.4f})" if cal
                  else "threshold: not calibrated (spot-edge gallery calibrate)")


@gallery_app.command("remove")
def gallery_remove(
    gallery: Path = typer.Argument(..., help="Gallery directory."),
    identity: Optional[str] = typer.Option(None, "--identity", "-i", help="Remove every entry of this identity."),
    entry_id: Optional[list[int]] = typer.Option(None, "--entry-id", help="Remove this entry (repeatable)."),
) -> None:
    """Remove entries by identity or id.

    Example: spot-edge gallery remove gallery/ --identity alice
    """
    from spot_edge.gallery import Gallery

    with friendly_errors():
        if identity is None and not entry_id:
            raise CliError("say what to remove: --identity NAME and/or --entry-id N")
        if not (gallery / "gallery.json").exists():
            raise FileNotFoundError(f"no gallery at {gallery}")
        with Gallery.transaction(gallery) as g:
            removed = g.remove(identity=identity, entry_ids=entry_id or None)
            left = len(g)
        if removed == 0:
            raise CliError("nothing matched: no entry removed", code=1)
    console.print(f"removed {removed} entries; {left} left")


@gallery_app.command("calibrate")
def gallery_calibrate(
    gallery: Path = typer.Argument(..., help="Gallery directory (the threshold is stored in it)."),
    target_fmr: float = typer.Option(0.01, "--target-fmr", help="False-match rate allowed (fraction of impostor "
                                     "pairs at or above the threshold)."),
    labelled: Optional[Path] = typer.Option(None, "--labelled", help="Labelled set to calibrate on: another "
                                            "gallery directory or a .npz (embeddings, identities, modalities). "
                                            "Default: this gallery's own entries."),
    query_modality: str = typer.Option("infrared", help="Query side of the pairs (the other modality is "
                                       "the gallery side)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Choose the match threshold for a target false-match rate on a labelled set; report FMR and TMR.

    Pairs are (query-modality entry, other-modality entry): genuine when the identities agree,
    impostor otherwise.

    Example: spot-edge gallery calibrate gallery/ --target-fmr 0.001
    """
    from spot_edge.gallery import Gallery, calibrate_cross_modality

    with friendly_errors():
        _check_modality(query_modality)
        if labelled is None:
            source = Gallery.load(gallery)
        elif labelled.is_dir():
            source = Gallery.load(labelled)
        else:
            emb, meta = _load_embedding_file(labelled)
            if "identities" not in meta or "modalities" not in meta:
                raise CliError(f"{labelled} needs 'identities' and 'modalities' arrays beside 'embeddings'")
            source = Gallery()
            source.add(emb, identities=meta["identities"], modality=meta["modalities"])
        cal = calibrate_cross_modality(source, target_fmr, query_modality)
        with Gallery.transaction(gallery) as g:
            if source is not None and g.embedding_dim is not None and source.embedding_dim != g.embedding_dim:
                raise CliError(f"the labelled set is {source.embedding_dim}-d, the gallery {g.embedding_dim}-d")
            g.set_calibration(cal)
    if as_json:
        print_json(cal.to_dict())
        return
    console.print(f"threshold {cal.threshold:.4f}: FMR {cal.fmr:.4%} (target {cal.target_fmr:.4%}), "
                  f"TMR {cal.tmr:.2%} on {cal.num_genuine} genuine / {cal.num_impostor} impostor pairs")
    table = Table("target FMR", "threshold", "FMR", "TMR", title="operating points")
    for row in cal.curve:
        table.add_row(f"{row['target_fmr']:g}", f"{row['threshold']:.4f}", f"{row['fmr']:.4%}", f"{row['tmr']:.2%}")
    console.print(table)
    if cal.num_impostor < 1 / max(target_fmr, 1e-12):
        console.print(f"[yellow]only {cal.num_impostor} impostor pairs: an FMR of {target_fmr:g} is not "
                      "resolved by this set; use a larger labelled set[/]")


# ----------------------------------------------------------------------------- spot-edge match


@app.command("match")
def match(
    gallery: Path = typer.Argument(..., help="Gallery directory."),
    images: Optional[Path] = typer.Option(None, "--images", help="Folder of query person crops."),
    embeddings: Optional[Path] = typer.Option(None, "--embeddings", help="Query embeddings (.npy / .npz)."),
    modality: str = typer.Option("infrared", "--modality", help="Modality of the queries; they are searched "
                                 "against the other modality's entries."),
    target: Optional[str] = typer.Option(None, help="Search these entries instead: visible, infrared or any."),
    top_k: int = typer.Option(5, "--top-k", help="Results per query."),
    threshold: Optional[float] = typer.Option(None, help="Match threshold (default: the calibrated one)."),
    model: str = typer.Option("", "--model", "-m", help="SPOT model (needed with --images)."),
    backend: str = typer.Option("auto", help="auto, pytorch, onnxruntime, tensorrt."),
    device: str = typer.Option("auto", help="auto, cpu, cuda."),
    pose_weights: Optional[Path] = typer.Option(None, "--pose-weights", help="OpenPose weights, run on each crop."),
    search_backend: str = typer.Option("auto", help="auto, numpy (exact) or faiss."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Top-k gallery matches for query crops or embeddings (cross-modality by default).

    Example: spot-edge match gallery/ --images queries/ --modality infrared -m exports/spot --top-k 5
    """
    from spot_edge.gallery import Gallery

    with friendly_errors():
        _check_modality(modality)
        if (images is None) == (embeddings is None):
            raise CliError("give exactly one of --images FOLDER or --embeddings FILE")
        g = Gallery.load(gallery)
        if images is not None:
            embedder = _load_embedder(model, backend, device)
            with console.status(f"embedding {images}..."):
                emb, files, _ = _embed_image_folder(images, embedder, modality, pose_weights)
        else:
            emb, meta = _load_embedding_file(embeddings)
            files = meta.get("files", [f"#{i}" for i in range(len(emb))])
        results = g.search(emb, modality=modality, k=top_k, target=target, backend=search_backend)
        thr = threshold if threshold is not None else g.threshold
    out = []
    for name, matches in zip(files, results):
        best = matches[0] if matches else None
        out.append({"query": name, "matched": bool(best and (thr is None or best.similarity >= thr)),
                    "identity": best.identity if best and (thr is None or best.similarity >= thr) else None,
                    "matches": [m.to_dict() for m in matches]})
    if as_json:
        print_json({"threshold": thr, "results": out})
        return
    table = Table("query", "match", *[f"#{i + 1}" for i in range(top_k)],
                  title=f"threshold {thr:.3f}" if thr is not None else "no threshold (uncalibrated)")
    for row, matches in zip(out, results):
        table.add_row(row["query"], row["identity"] or "-",
                      *[f"{m.identity} {m.similarity:.3f}" for m in matches] + [""] * (top_k - len(matches)))
    console.print(table)


__all__ = ["app", "gallery_app", "run", "match", "gallery_enroll", "gallery_list", "gallery_remove",
           "gallery_calibrate"]
