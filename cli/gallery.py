"""``spot-edge gallery ...`` (enroll / list / remove / calibrate) and ``spot-edge match``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from spot_edge.cli.common import CliApp, CliError, console, friendly_errors, print_json
from spot_edge.cli.embedding_inputs import (MODALITY_HELP, check_modality_option, embed_image_folder,
                                            identities_from, load_embedder, load_embedding_file)

app = CliApp(help="The gallery and one-off matching.")
gallery_app = CliApp(help="A gallery of enrolled / observed people (embeddings + identity, modality, "
                               "camera, time).", no_args_is_help=True)
app.add_typer(gallery_app, name="gallery")


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
        check_modality_option(modality)
        if (images is None) == (embeddings is None):
            raise CliError("give exactly one of --images FOLDER or --embeddings FILE")
        labels = None
        if images is not None:
            embedder = load_embedder(model, backend, device)
            with console.status(f"embedding {images}..."):
                emb, files, labels = embed_image_folder(images, embedder, modality, pose_weights)
            meta = {"files": files}
        else:
            emb, meta = load_embedding_file(embeddings)
        ids = identities_from(meta, labels, identity, len(emb))
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
        check_modality_option(query_modality)
        if labelled is None:
            source = Gallery.load(gallery)
        elif labelled.is_dir():
            source = Gallery.load(labelled)
        else:
            emb, meta = load_embedding_file(labelled)
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
        check_modality_option(modality)
        if (images is None) == (embeddings is None):
            raise CliError("give exactly one of --images FOLDER or --embeddings FILE")
        g = Gallery.load(gallery)
        if images is not None:
            embedder = load_embedder(model, backend, device)
            with console.status(f"embedding {images}..."):
                emb, files, _ = embed_image_folder(images, embedder, modality, pose_weights)
        else:
            emb, meta = load_embedding_file(embeddings)
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


__all__ = ["app", "gallery_app", "match", "gallery_enroll", "gallery_list", "gallery_remove", "gallery_calibrate"]
