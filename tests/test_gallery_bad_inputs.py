"""Bad input to the gallery, as tables: damaged folders, bad arrays and arguments, bad command lines.

Each case asserts a clear refusal (GalleryError / InputError with a message naming the problem for
the API; exit code 2 and one ``error:`` line for the CLI) and that nothing was lost: the gallery
folder is byte-for-byte unchanged, and a writer never saves over a folder it cannot read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from spot_edge.cli.app import app as root_app
from spot_edge.errors import InputError
from spot_edge.gallery import Gallery, GalleryError, ModelIdentity

DIM = 8
MODEL = ModelIdentity("cfg-a", DIM, {"height": 64, "width": 32})


def _folder_bytes(folder: Path) -> dict[str, bytes]:
    """Every file of the folder but the lock (which writers create), by name."""
    if folder.is_file():
        return {"": folder.read_bytes()}
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and p.name != "gallery.lock"}


def _make_gallery(folder: Path) -> dict:
    rng = np.random.default_rng(0)
    g = Gallery(path=folder)
    g.add(rng.standard_normal((3, DIM)), identities=["a", "b", "c"], modality="visible", camera="c1", model=MODEL)
    g.add(rng.standard_normal((3, DIM)), identities=["a", "b", "c"], modality="infrared", camera="c3", model=MODEL)
    g.save()
    return json.loads((folder / "gallery.json").read_text())


# ----------------------------------------------------------------------------- damaged folders


def _edit_manifest(**changes):
    def edit(folder: Path, manifest: dict) -> None:
        (folder / "gallery.json").write_text(json.dumps({**manifest, **changes}))
    return edit


def _edit_meta(transform):
    def edit(folder: Path, manifest: dict) -> None:
        path = folder / manifest["meta_file"]
        lines = path.read_text().splitlines()
        path.write_text("\n".join(transform([json.loads(x) for x in lines], lines)) + "\n")
    return edit


def _write_manifest_text(text: str):
    return lambda folder, manifest: (folder / "gallery.json").write_text(text)


def _outside_file(folder: Path, manifest: dict) -> None:
    outside = folder.parent / "outside.npy"
    np.save(outside, np.ones((6, DIM), np.float32))
    _edit_manifest(embeddings_file="../outside.npy")(folder, manifest)


def _symlink_out(folder: Path, manifest: dict) -> None:
    outside = folder.parent / "outside.jsonl"
    outside.write_text((folder / manifest["meta_file"]).read_text())
    (folder / "meta.link.jsonl").symlink_to(outside)
    _edit_manifest(meta_file="meta.link.jsonl")(folder, manifest)


def _replace_embeddings(array):
    def edit(folder: Path, manifest: dict) -> None:
        np.save(folder / manifest["embeddings_file"], array, allow_pickle=True)
    return edit


def _nan_row(folder: Path, manifest: dict) -> None:
    emb = np.load(folder / manifest["embeddings_file"])
    emb[4, 0] = np.inf
    np.save(folder / manifest["embeddings_file"], emb)


def _is_a_file(folder: Path, manifest: dict) -> None:
    for p in folder.iterdir():
        p.unlink()
    folder.rmdir()
    folder.write_text("not a gallery")


DAMAGED = [
    ("manifest-not-json", _write_manifest_text("{not json"), "not valid JSON"),
    ("manifest-not-an-object", _write_manifest_text("[1, 2]"), "not a spot-edge gallery"),
    ("manifest-other-format", _edit_manifest(format="something-else"), "not a spot-edge gallery"),
    ("manifest-newer-version", _edit_manifest(version=99), "upgrade spot-edge"),
    ("manifest-count-negative", _edit_manifest(count=-1), "count must be"),
    ("manifest-count-text", _edit_manifest(count="6"), "count must be"),
    ("manifest-dim-zero", _edit_manifest(embedding_dim=0), "embedding_dim must be"),
    ("manifest-file-escapes-folder", _outside_file, "points outside"),
    ("manifest-file-absolute", _edit_manifest(meta_file="/etc/passwd"), "relative path inside"),
    ("manifest-file-symlink-out", _symlink_out, "points outside"),
    ("manifest-model-malformed", _edit_manifest(model={"config_fingerprint": 3}), "config_fingerprint"),
    ("manifest-model-other-dim", _edit_manifest(model={"embedding_dim": 16}), "16-d"),
    ("manifest-calibration-malformed", _edit_manifest(calibration={"threshold": "high"}), "calibration"),
    ("data-file-missing", lambda f, m: (f / m["embeddings_file"]).unlink(), "missing data files"),
    ("data-file-not-npy", lambda f, m: (f / m["embeddings_file"]).write_text("text"), "unreadable"),
    ("data-file-pickle", _replace_embeddings(np.array([{"x": 1}] * 6, dtype=object)), "unreadable"),
    ("data-shape-mismatch", _replace_embeddings(np.ones((5, DIM), np.float32)), "the manifest says"),
    ("data-float64", _replace_embeddings(np.ones((6, DIM))), "the manifest says"),
    ("data-non-finite-row", _nan_row, "NaN or infinite"),
    ("meta-not-json", _edit_meta(lambda d, lines: ["{broken"] + lines[1:]), "not valid JSON"),
    ("meta-line-missing", _edit_meta(lambda d, lines: lines[1:]), "the manifest says"),
    ("meta-unknown-modality", _edit_meta(lambda d, lines: [json.dumps({**d[0], "modality": "thermal"})] + lines[1:]),
     "unknown modality"),
    ("meta-empty-identity", _edit_meta(lambda d, lines: [json.dumps({**d[0], "identity": ""})] + lines[1:]),
     "identity must be"),
    ("meta-unknown-field", _edit_meta(lambda d, lines: [json.dumps({**d[0], "pickle": "x"})] + lines[1:]),
     "unknown fields"),
    ("meta-duplicate-ids", _edit_meta(lambda d, lines: [lines[1]] + lines[1:]), "repeats entry ids"),
    ("meta-timestamp-nan", _edit_meta(lambda d, lines: [json.dumps(d[0]).replace(
        f'"timestamp": {json.dumps(d[0]["timestamp"])}', '"timestamp": NaN')] + lines[1:]), "timestamp"),
    ("path-is-a-file", _is_a_file, "is a file"),
]


@pytest.mark.parametrize("damage,message", [c[1:] for c in DAMAGED], ids=[c[0] for c in DAMAGED])
def test_damaged_gallery_is_refused_and_never_overwritten(tmp_path, damage, message):
    folder = tmp_path / "g"
    damage(folder, _make_gallery(folder))
    before = _folder_bytes(folder)
    with pytest.raises(GalleryError, match=message):
        Gallery.load(folder)
    writer = Gallery(path=folder)  # e.g. a pipeline observing into this folder
    writer.add(np.ones((1, DIM)), identities="new", modality="visible")
    with pytest.raises(GalleryError):
        writer.save()
    assert writer.dirty and len(writer) == 1  # the writer keeps its entry in memory
    assert _folder_bytes(folder) == before  # nothing written over the damaged folder


def test_checksum_mismatch_is_found_by_verify(tmp_path):
    folder = tmp_path / "g"
    manifest = _make_gallery(folder)
    emb = np.load(folder / manifest["embeddings_file"])
    emb[0, 0] += 0.5
    np.save(folder / manifest["embeddings_file"], emb)
    assert len(Gallery.load(folder)) == 6
    with pytest.raises(GalleryError, match="checksum"):
        Gallery.load(folder, verify=True)


# ----------------------------------------------------------------------------- API arguments


def _add(**kwargs):
    args = {"embeddings": np.ones((2, DIM)), "identities": "x", "modality": "visible"}
    args.update(kwargs)
    return lambda g: g.add(**args)


BAD_CALLS = [
    ("nan-row", _add(embeddings=np.array([[np.nan] * DIM, [1.0] * DIM])), InputError, "NaN or infinite"),
    ("inf-row", _add(embeddings=np.full((1, DIM), np.inf)), InputError, "NaN or infinite"),
    ("complex", _add(embeddings=np.ones((1, DIM), complex)), InputError, "numeric"),
    ("zero-row", _add(embeddings=np.zeros((1, DIM))), InputError, "all zeros"),
    ("wrong-dim", _add(embeddings=np.ones((1, DIM + 1))), InputError, "dimension 9"),
    ("three-d", _add(embeddings=np.ones((1, 2, DIM))), InputError, "must be"),
    ("strings", _add(embeddings=[["a"] * DIM]), InputError, "numeric"),
    ("wrong-modality", _add(modality="thermal"), InputError, "modality"),
    ("empty-identity", _add(identities=""), InputError, "non-empty"),
    ("none-identity", _add(identities=[None, "x"]), InputError, "non-empty"),
    ("identity-count", _add(identities=["a", "b", "c"]), InputError, "expected 1 or 2"),
    ("timestamp-nan", _add(timestamps=float("nan")), InputError, "finite"),
    ("other-fingerprint", _add(model=ModelIdentity("cfg-b", DIM)), GalleryError, "cfg-a vs cfg-b"),
    ("other-preprocessing", _add(model=ModelIdentity(None, DIM, {"height": 288, "width": 144})), GalleryError,
     "preprocessing height 64 vs 288"),
    ("model-dim-vs-rows", _add(model=ModelIdentity("cfg-a", 16)), InputError, "16-d"),
    ("search-k-zero", lambda g: g.search(np.ones(DIM), "visible", k=0), InputError, "k must be"),
    ("search-other-model", lambda g: g.search(np.ones(DIM), "visible", model=ModelIdentity("cfg-z")), GalleryError,
     "another model"),
    ("search-target", lambda g: g.search(np.ones(DIM), "visible", target="thermal"), InputError, "modality"),
    ("search-backend", lambda g: g.search(np.ones(DIM), "visible", backend="annoy"), InputError, "backend"),
    ("search-nan-query", lambda g: g.search(np.full(DIM, np.nan), "visible"), InputError, "NaN"),
    ("remove-nothing-said", lambda g: g.remove(), InputError, "say what to remove"),
    ("faiss-kind", lambda g: setattr(g, "faiss_index", "ivf"), InputError, "faiss_index"),
    ("open-other-model", lambda g: Gallery.open(g.path, model=ModelIdentity("cfg-b")), GalleryError, "cfg-a vs cfg-b"),
    ("transaction-other-model", lambda g: Gallery.transaction(g.path, model=ModelIdentity("cfg-b")).__enter__(),
     GalleryError, "another model"),
]


@pytest.mark.parametrize("call,error,message", [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS])
def test_bad_api_input_is_refused(tmp_path, call, error, message):
    folder = tmp_path / "g"
    _make_gallery(folder)
    before = _folder_bytes(folder)
    g = Gallery.load(folder)
    entries = g.entries
    with pytest.raises(error, match=message):
        call(g)
    assert g.entries == entries and not g.dirty  # nothing half-added
    assert _folder_bytes(folder) == before


# ----------------------------------------------------------------------------- the command line


@pytest.fixture
def cli_files(tmp_path, monkeypatch):
    """A gallery ``g`` (model cfg-a, 8-d) and embedding files, in the working directory."""
    monkeypatch.chdir(tmp_path)
    _make_gallery(tmp_path / "g")
    rng = np.random.default_rng(1)
    np.save("q.npy", rng.standard_normal((2, DIM)).astype(np.float32))
    np.save("nan.npy", np.full((2, DIM), np.nan, np.float32))
    np.save("d16.npy", rng.standard_normal((2, 16)).astype(np.float32))
    np.save("pickled.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    np.save("other.npy", rng.standard_normal((2, DIM)).astype(np.float32))
    Path("other.npy.json").write_text(json.dumps({"modality": "infrared", "backend": {
        "config_fingerprint": "cfg-b", "embedding_dim": DIM, "input_size": [64, 32]}}))
    np.save("ir.npy", rng.standard_normal((2, DIM)).astype(np.float32))
    Path("ir.npy.json").write_text(json.dumps({"modality": "infrared", "backend": {"config_fingerprint": "cfg-a"}}))
    np.save("badside.npy", rng.standard_normal((2, DIM)).astype(np.float32))
    Path("badside.npy.json").write_text("{oops")
    np.savez("noemb.npz", vectors=np.ones((2, DIM), np.float32))
    np.savez("nomod.npz", embeddings=np.ones((2, DIM), np.float32), identities=np.asarray(["a", "b"]))
    Path("q.txt").write_text("1 2 3")
    Path("afile").write_text("x")
    return tmp_path


BAD_COMMANDS = [
    ("match-top-k-zero", ["match", "g", "--embeddings", "q.npy", "--top-k", "0"], "--top-k must be at least 1"),
    ("match-top-k-negative", ["match", "g", "--embeddings", "q.npy", "--top-k", "-3"], "--top-k must be at least 1"),
    ("match-threshold-above-1", ["match", "g", "--embeddings", "q.npy", "--threshold", "2"], "[-1, 1]"),
    ("match-threshold-nan", ["match", "g", "--embeddings", "q.npy", "--threshold", "nan"], "[-1, 1]"),
    ("match-target", ["match", "g", "--embeddings", "q.npy", "--target", "thermal"], "--target must be"),
    ("match-search-backend", ["match", "g", "--embeddings", "q.npy", "--search-backend", "annoy"],
     "--search-backend must be"),
    ("match-modality", ["match", "g", "--embeddings", "q.npy", "--modality", "thermal"], "--modality must be"),
    ("match-no-input", ["match", "g"], "exactly one of"),
    ("match-nan-queries", ["match", "g", "--embeddings", "nan.npy"], "NaN or infinite"),
    ("match-other-dim", ["match", "g", "--embeddings", "d16.npy"], "dimension 16"),
    ("match-other-model", ["match", "g", "--embeddings", "other.npy"], "cfg-a vs cfg-b"),
    ("match-sidecar-modality", ["match", "g", "--embeddings", "ir.npy", "--modality", "visible"],
     "says its embeddings are infrared"),
    ("match-missing-gallery", ["match", "nowhere", "--embeddings", "q.npy"], "no gallery at"),
    ("match-gallery-is-file", ["match", "afile", "--embeddings", "q.npy"], "is a file"),
    ("match-model-with-file", ["match", "g", "--embeddings", "q.npy", "-m", "x.onnx"], "--model goes with --images"),
    ("enroll-both-inputs", ["gallery", "enroll", "g", "--embeddings", "q.npy", "--images", "."], "exactly one of"),
    ("enroll-missing-file", ["gallery", "enroll", "g", "--embeddings", "none.npy", "-i", "x"], "not found"),
    ("enroll-pickled-npy", ["gallery", "enroll", "g", "--embeddings", "pickled.npy", "-i", "x"], "not a readable"),
    ("enroll-text-file", ["gallery", "enroll", "g", "--embeddings", "q.txt", "-i", "x"], ".npy"),
    ("enroll-npz-without-embeddings", ["gallery", "enroll", "g", "--embeddings", "noemb.npz", "-i", "x"],
     "no 'embeddings'"),
    ("enroll-bad-sidecar", ["gallery", "enroll", "g", "--embeddings", "badside.npy", "-i", "x"], "not valid JSON"),
    ("enroll-nan-rows", ["gallery", "enroll", "g", "--embeddings", "nan.npy", "-i", "x"], "NaN or infinite"),
    ("enroll-other-dim", ["gallery", "enroll", "g", "--embeddings", "d16.npy", "-i", "x"], "-d embeddings"),
    ("enroll-other-model", ["gallery", "enroll", "g", "--embeddings", "other.npy", "-i", "x"], "another model"),
    ("enroll-empty-identity", ["gallery", "enroll", "g", "--embeddings", "q.npy", "-i", ""], "--identity"),
    ("enroll-no-identity", ["gallery", "enroll", "g", "--embeddings", "q.npy"], "say who this is"),
    ("enroll-modality", ["gallery", "enroll", "g", "--embeddings", "q.npy", "-i", "x", "--modality", "ir"],
     "--modality must be"),
    ("enroll-no-model-for-images", ["gallery", "enroll", "g", "--images", "."], "--model"),
    ("enroll-into-a-file", ["gallery", "enroll", "afile", "--embeddings", "q.npy", "-i", "x"], "not a folder"),
    ("calibrate-fmr-zero", ["gallery", "calibrate", "g", "--target-fmr", "0"], "--target-fmr"),
    ("calibrate-fmr-one", ["gallery", "calibrate", "g", "--target-fmr", "1"], "--target-fmr"),
    ("calibrate-fmr-negative", ["gallery", "calibrate", "g", "--target-fmr", "-0.1"], "--target-fmr"),
    ("calibrate-query-modality", ["gallery", "calibrate", "g", "--query-modality", "x"], "--query-modality"),
    ("calibrate-labelled-unlabelled", ["gallery", "calibrate", "g", "--labelled", "nomod.npz"],
     "needs 'identities' and 'modalities'"),
    ("calibrate-missing-gallery", ["gallery", "calibrate", "nowhere"], "no gallery at"),
    ("remove-nothing-said", ["gallery", "remove", "g"], "say what to remove"),
    ("remove-missing-gallery", ["gallery", "remove", "nowhere", "-i", "a"], "no gallery at"),
    ("list-missing-gallery", ["gallery", "list", "nowhere"], "no gallery at"),
]


@pytest.mark.parametrize("args,message", [c[1:] for c in BAD_COMMANDS], ids=[c[0] for c in BAD_COMMANDS])
def test_bad_command_line_is_one_line_and_exit_2(cli_files, args, message):
    before = _folder_bytes(cli_files / "g")
    result = CliRunner().invoke(root_app, args)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.output
    assert _folder_bytes(cli_files / "g") == before
    assert not (cli_files / "nowhere").exists()  # a refused command creates no gallery
    assert os.path.isfile(cli_files / "afile")
