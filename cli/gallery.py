"""``spot-edge gallery ...`` (enroll / list / remove / calibrate) and ``spot-edge match``.

Paths are taken as typed, relative to the working directory (``user_path``, once, here). User text
(identities, cameras, file names) is printed as plain text, never as rich markup or emoji codes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table
from rich.text import Text

from spot_edge.cli.common import (CliApp, CliError, check_range, console, optional_user_path, print_json, stdout,
                                  user_path, warn)
from spot_edge.cli.embedding_inputs import (EmbeddingFile, check_modality_option, embed_image_folder, identities_from,
                                            load_embedder, load_embedding_file)

app = CliApp(help="The gallery and one-off matching.")
gallery_app = CliApp(help="A gallery of enrolled / observed people (embeddings + identity, modality, "
                          "camera, time).", no_args_is_help=True)
app.add_typer(gallery_app, name="gallery")

_TARGETS = ("visible", "infrared", "any")


def _model_of_file(source: EmbeddingFile):
    """The model an embedding file says made it; a warning when it says nothing."""
    if source.model is None:
        warn(f"{source.path} does not say which model made it (no .json sidecar from `spot-edge embed`, "
             "no 'model' in the .npz): only its dimension is checked against the gallery")
    return source.model


def _file_modalities(source: EmbeddingFile, modality: Optional[str]) -> list[str] | None:
    """The file's modalities, refused when ``--modality`` says otherwise."""
    if source.modalities and modality is not None and any(m != modality for m in source.modalities):
        other = sorted(set(source.modalities) - {modality})
        raise CliError(f"{source.path} says its embeddings are {', '.join(other)}, --modality says {modality}; "
                       "drop --modality or use the right file")
    return source.modalities


# ----------------------------------------------------------------------------- spot-edge gallery


@gallery_app.command("enroll")
def gallery_enroll(
    gallery: Path = typer.Argument(..., help="Gallery folder (created if missing)."),
    images: Optional[Path] = typer.Option(None, "--images", help="Folder of person crops (pose maps from .npy "
                                          "files beside them, or --pose-weights)."),
    embeddings: Optional[Path] = typer.Option(None, "--embeddings", help="Precomputed embeddings: .npy (from "
                                              "`spot-edge embed`) or .npz with 'embeddings' [+ 'identities']."),
    identity: Optional[str] = typer.Option(None, "--identity", "-i", help="Identity of every image (default: "
                                           "labels.csv pid / the .npz identities)."),
    modality: Optional[str] = typer.Option(None, "--modality", help="visible or infrared (default: what the "
                                           "embedding file says, else visible)."),
    camera: str = typer.Option("", help="Camera name stored with the entries."),
    model: str = typer.Option("", "--model", "-m", help="SPOT model (needed with --images)."),
    backend: str = typer.Option("auto", help="auto, pytorch, onnxruntime, tensorrt."),
    device: str = typer.Option("auto", help="auto, cpu, cuda."),
    pose_weights: Optional[Path] = typer.Option(None, "--pose-weights", help="OpenPose weights, run on each crop."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Add people to a gallery (atomic; safe with other readers and writers).

    Embeddings of another model than the gallery's are refused.

    Examples:

      spot-edge gallery enroll gallery/ --images alice/ -i alice -m exports/spot

      spot-edge gallery enroll gallery/ --embeddings bob.npy -i bob
    """
    from spot_edge.gallery import Gallery, ModelIdentity
    from spot_edge.gallery.identity import check_same_model
    from spot_edge.gallery.store import recorded_model

    folder = user_path(gallery)
    if (images is None) == (embeddings is None):
        raise CliError("give exactly one of --images FOLDER or --embeddings FILE")
    if modality is not None:
        check_modality_option(modality)
    thumbs = None
    if images is not None:
        images = user_path(images)
        embedder = load_embedder(model, backend, device)
        model_identity = ModelIdentity.of(embedder)
        check_same_model(recorded_model(folder), model_identity, str(folder))  # before embedding a whole folder
        with console.status(Text(f"embedding {images}...")):
            emb, files, labels = embed_image_folder(images, embedder, modality or "visible",
                                                    optional_user_path(pose_weights))
        ids = identities_from(None, labels, identity, files, len(emb))
        modalities, cameras, thumbs = modality or "visible", camera, [str(images / f) for f in files]
    else:
        if model:
            raise CliError("--model goes with --images; an embedding file says itself which model made it")
        source = load_embedding_file(user_path(embeddings))
        emb, model_identity = source.embeddings, _model_of_file(source)
        modalities = _file_modalities(source, modality) or modality or "visible"
        ids = identities_from(source, None, identity, source.files, len(emb))
        cameras = source.cameras or camera
    with Gallery.transaction(folder, embedding_dim=emb.shape[1], model=model_identity) as g:
        new = g.add(emb, identities=ids, modality=modalities, camera=cameras, thumbnails=thumbs, model=model_identity)
        total = len(g)
    names = sorted(set(ids))
    if as_json:
        print_json({"gallery": str(folder), "added": len(new), "entries": total, "identities": names,
                    "entry_ids": new})
        return
    shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
    stdout.print(Text(f"added {len(new)} entries ({shown}) -> {folder} ({total} entries)"))


@gallery_app.command("list")
def gallery_list(
    gallery: Path = typer.Argument(..., help="Gallery folder."),
    entries: bool = typer.Option(False, "--entries", help="List every entry (id, identity, modality, camera)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Identities, entries per modality, the model and the calibrated threshold.

    Example: spot-edge gallery list gallery/
    """
    from spot_edge.gallery import Gallery

    g = Gallery.load(user_path(gallery))
    summary = g.summary()
    if as_json:
        if entries:
            summary["entries_list"] = [e.to_dict() for e in g.entries]
        print_json(summary)
        return
    title = Text(f"{gallery}: {summary['entries']} entries, {summary['embedding_dim']}-d")
    if entries:
        table = Table("entry id", "identity", "modality", "camera", title=title)
        for e in g.entries:
            table.add_row(Text(e.entry_id), Text(e.identity), Text(e.modality), Text(e.camera))
    else:
        table = Table("identity", "visible", "infrared", title=title)
        for ident, counts in sorted(summary["identities"].items()):
            table.add_row(Text(ident), str(counts["visible"]), str(counts["infrared"]))
    stdout.print(table)
    stdout.print(Text(f"model: {g.model.describe()}" if g.model else "model: not recorded (adopted from the "
                                                                      "next enrolment or run with a model)"))
    cal = summary["calibration"]
    stdout.print(Text(f"threshold: {cal['threshold']:.4f} (FMR {cal['fmr']:.4f}, TMR {cal['tmr']:.4f})" if cal
                      else "threshold: not calibrated (spot-edge gallery calibrate)"))


@gallery_app.command("remove")
def gallery_remove(
    gallery: Path = typer.Argument(..., help="Gallery folder."),
    identity: Optional[str] = typer.Option(None, "--identity", "-i", help="Remove every entry of this identity."),
    entry_id: Optional[list[str]] = typer.Option(None, "--entry-id", help="Remove this entry (repeatable; ids "
                                                 "from `gallery list --entries`)."),
    non_finite: bool = typer.Option(False, "--non-finite", help="Remove entries whose embedding holds NaN/Inf "
                                    "(a damaged gallery)."),
) -> None:
    """Remove entries by identity or id (exit code 1 when nothing matched).

    Example: spot-edge gallery remove gallery/ --identity alice
    """
    from spot_edge.gallery import Gallery

    folder = user_path(gallery)
    if identity is None and not entry_id and not non_finite:
        raise CliError("say what to remove: --identity NAME, --entry-id ID and/or --non-finite")
    if identity is not None and not identity:
        raise CliError("--identity must not be empty")
    with Gallery.transaction(folder, create=False, allow_non_finite=non_finite) as g:
        removed = g.remove_non_finite() if non_finite else 0
        if identity is not None or entry_id:
            removed += g.remove(identity=identity, entry_ids=entry_id or None)
        left = len(g)
    if removed == 0:
        raise CliError("nothing matched: no entry removed", code=1)
    stdout.print(Text(f"removed {removed} entries; {left} left"))


@gallery_app.command("calibrate")
def gallery_calibrate(
    gallery: Path = typer.Argument(..., help="Gallery folder (the threshold is stored in it)."),
    target_fmr: float = typer.Option(0.01, "--target-fmr", help="False-match rate allowed, in (0, 1): fraction "
                                     "of impostor pairs at or above the threshold."),
    labelled: Optional[Path] = typer.Option(None, "--labelled", help="Labelled set to calibrate on: another "
                                            "gallery folder or a .npz (embeddings, identities, modalities). "
                                            "Default: this gallery's own entries."),
    query_modality: str = typer.Option("infrared", help="Query side of the pairs (the other modality is "
                                       "the gallery side)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Choose the match threshold for a target false-match rate; report FMR and TMR.

    Pairs are (query-modality entry, other-modality entry) of a labelled set: genuine when the
    identities agree, impostor otherwise.

    Example: spot-edge gallery calibrate gallery/ --target-fmr 0.001
    """
    from spot_edge.gallery import Gallery, calibrate_cross_modality

    folder = user_path(gallery)
    if not 0.0 < target_fmr < 1.0:
        raise CliError(f"--target-fmr must be between 0 and 1 (exclusive), got {target_fmr:g}")
    check_modality_option(query_modality, "--query-modality")
    labelled = optional_user_path(labelled)
    if labelled is None:
        source = Gallery.load(folder)
    elif labelled.is_dir():
        source = Gallery.load(labelled)
    else:
        data = load_embedding_file(labelled)
        if data.identities is None or data.modalities is None:
            raise CliError(f"{labelled} needs 'identities' and 'modalities' arrays beside 'embeddings'")
        source = Gallery()
        source.add(data.embeddings, identities=data.identities, modality=data.modalities,
                   model=_model_of_file(data))
    cal = calibrate_cross_modality(source, target_fmr, query_modality)
    with Gallery.transaction(folder, create=False) as g:
        if g.embedding_dim is not None and source.embedding_dim != g.embedding_dim:
            raise CliError(f"the labelled set is {source.embedding_dim}-d, the gallery {g.embedding_dim}-d")
        if source.model is not None:
            g.check_model(source.model)
        g.set_calibration(cal)
    if as_json:
        print_json(cal.to_dict())
        return
    stdout.print(Text(f"threshold {cal.threshold:.4f}: FMR {cal.fmr:.4%} (target {cal.target_fmr:.4%}), "
                      f"TMR {cal.tmr:.2%} on {cal.num_genuine} genuine / {cal.num_impostor} impostor pairs"))
    table = Table("target FMR", "threshold", "FMR", "TMR", title="operating points")
    for row in cal.curve:
        table.add_row(f"{row['target_fmr']:g}", f"{row['threshold']:.4f}", f"{row['fmr']:.4%}", f"{row['tmr']:.2%}")
    stdout.print(table)
    if cal.num_impostor < 1 / target_fmr:
        warn(f"only {cal.num_impostor} impostor pairs: an FMR of {target_fmr:g} is not resolved by this set; "
             "use a larger labelled set")


# ----------------------------------------------------------------------------- spot-edge match


@app.command("match")
def match(
    gallery: Path = typer.Argument(..., help="Gallery folder."),
    images: Optional[Path] = typer.Option(None, "--images", help="Folder of query person crops."),
    embeddings: Optional[Path] = typer.Option(None, "--embeddings", help="Query embeddings (.npy / .npz)."),
    modality: Optional[str] = typer.Option(None, "--modality", help="Modality of the queries (default: what the "
                                           "embedding file says, else infrared); they are searched against the "
                                           "other modality's entries."),
    target: Optional[str] = typer.Option(None, help="Search these entries instead: visible, infrared or any."),
    top_k: int = typer.Option(5, "--top-k", help="Results per query (>= 1)."),
    threshold: Optional[float] = typer.Option(None, help="Match threshold, a cosine similarity in [-1, 1] "
                                              "(default: the calibrated one)."),
    model: str = typer.Option("", "--model", "-m", help="SPOT model (needed with --images)."),
    backend: str = typer.Option("auto", help="auto, pytorch, onnxruntime, tensorrt."),
    device: str = typer.Option("auto", help="auto, cpu, cuda."),
    pose_weights: Optional[Path] = typer.Option(None, "--pose-weights", help="OpenPose weights, run on each crop."),
    search_backend: str = typer.Option("auto", help="auto, numpy (exact) or faiss."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Top-k gallery matches for query crops or embeddings (cross-modality by default).

    Example: spot-edge match gallery/ --images queries/ -m exports/spot --top-k 5
    """
    from spot_edge.gallery import Gallery, ModelIdentity
    from spot_edge.gallery.search import SEARCH_BACKENDS

    folder = user_path(gallery)
    if (images is None) == (embeddings is None):
        raise CliError("give exactly one of --images FOLDER or --embeddings FILE")
    if modality is not None:
        check_modality_option(modality)
    check_range("--top-k", top_k, 1)
    if threshold is not None and not -1.0 <= threshold <= 1.0:
        raise CliError(f"--threshold is a cosine similarity in [-1, 1], got {threshold:g}")
    if target is not None and target not in _TARGETS:
        raise CliError(f"--target must be visible, infrared or any, got {target!r}")
    if search_backend not in SEARCH_BACKENDS:
        raise CliError(f"--search-backend must be auto, numpy or faiss, got {search_backend!r}")
    g = Gallery.load(folder)
    if images is not None:
        embedder = load_embedder(model, backend, device)
        query_model = ModelIdentity.of(embedder)
        modality = modality or "infrared"
        with console.status(Text(f"embedding {images}...")):
            emb, names, _ = embed_image_folder(user_path(images), embedder, modality, optional_user_path(pose_weights))
    else:
        if model:
            raise CliError("--model goes with --images; an embedding file says itself which model made it")
        source = load_embedding_file(user_path(embeddings))
        emb, names, query_model = source.embeddings, source.names, _model_of_file(source)
        file_modalities = _file_modalities(source, modality) or []
        if len(set(file_modalities)) > 1:
            raise CliError(f"{source.path} mixes visible and infrared queries; match one modality at a time")
        modality = modality or (file_modalities[0] if file_modalities else "infrared")
    results = g.search(emb, modality=modality, k=top_k, target=target, backend=search_backend, model=query_model)
    thr = threshold if threshold is not None else g.threshold
    out = []
    for name, matches in zip(names, results):
        best = matches[0] if matches else None
        ok = bool(best and (thr is None or best.similarity >= thr))
        out.append({"query": name, "matched": ok, "identity": best.identity if ok else None,
                    "matches": [m.to_dict() for m in matches]})
    if as_json:
        print_json({"threshold": thr, "modality": modality, "results": out})
        return
    columns = max((len(m) for m in results), default=0)  # top_k may exceed the gallery
    table = Table("query", "match", *[f"#{i + 1}" for i in range(columns)],
                  title=f"threshold {thr:.3f}" if thr is not None else "no threshold (uncalibrated)")
    for row, matches in zip(out, results):
        cells = [Text(f"{m.identity} {m.similarity:.3f}") for m in matches] + [Text("")] * (columns - len(matches))
        table.add_row(Text(row["query"]), Text(row["identity"] or "-"), *cells)
    stdout.print(table)


__all__ = ["app", "gallery_app", "match", "gallery_enroll", "gallery_list", "gallery_remove", "gallery_calibrate"]
