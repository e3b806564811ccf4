"""Gallery: add/search/remove, cross-modality search, persistence, atomic writes, calibration."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from spot_edge.gallery import (
    GALLERY_VERSION,
    Gallery,
    GalleryError,
    calibrate_cross_modality,
    calibrate_threshold,
    faiss_available,
    other_modality,
    pair_similarities,
)

DIM = 32


def _identity_set(rng, n_ids=6, per_id=3, noise=0.15):
    """Embeddings clustered by identity: centres + noise, both modalities."""
    centres = rng.standard_normal((n_ids, DIM))
    vis, ir, ids = [], [], []
    for i in range(n_ids):
        for _ in range(per_id):
            vis.append(centres[i] + noise * rng.standard_normal(DIM))
            ir.append(centres[i] + noise * rng.standard_normal(DIM))
            ids.append(f"id{i}")
    return np.asarray(vis, np.float32), np.asarray(ir, np.float32), ids


def test_add_search_cross_modality(rng):
    vis, ir, ids = _identity_set(rng)
    g = Gallery()
    g.add(vis, identities=ids, modality="visible", camera="cam1")
    g.add(ir, identities=ids, modality="infrared", camera="cam3", track_ids=7)
    assert len(g) == 2 * len(ids) and g.embedding_dim == DIM
    assert np.allclose(np.linalg.norm(g.embeddings, axis=1), 1.0, atol=1e-5)

    # an infrared query searches only visible entries by default, and vice versa
    res = g.search(ir[:4], modality="infrared", k=3)
    assert len(res) == 4 and all(len(r) == 3 for r in res)
    assert all(m.entry.modality == "visible" for r in res for m in r)
    assert [r[0].identity for r in res] == ids[:4]
    sims = [m.similarity for m in res[0]]
    assert sims == sorted(sims, reverse=True)
    assert abs(res[0][0].distance - (1 - res[0][0].similarity)) < 1e-9
    res_v = g.search(vis[0], modality="visible", k=2)
    assert all(m.entry.modality == "infrared" and m.entry.track_id == 7 for m in res_v[0])
    res_any = g.search(vis[0], modality="visible", k=1, target="any")
    assert res_any[0][0].entry.modality == "visible" and res_any[0][0].similarity > 0.999

    # exact: compare with brute force
    vn = vis / np.linalg.norm(vis, axis=1, keepdims=True)
    qn = ir[5] / np.linalg.norm(ir[5])
    assert res[0] and np.isclose(g.search(ir[5], "infrared", k=1)[0][0].similarity, (vn @ qn).max(), atol=1e-5)
    assert other_modality("infrared") == "visible"


def test_k_larger_than_gallery_and_empty_side(rng):
    g = Gallery(embedding_dim=DIM)
    assert g.search(rng.standard_normal(DIM), "infrared", k=5) == [[]]
    g.add(rng.standard_normal((2, DIM)), identities="a", modality="visible")
    assert len(g.search(rng.standard_normal(DIM), "infrared", k=5)[0]) == 2
    assert g.search(rng.standard_normal(DIM), "visible", k=5) == [[]]  # no infrared entries


def test_bad_input(rng):
    g = Gallery(embedding_dim=DIM)
    with pytest.raises(ValueError, match="dimension"):
        g.add(rng.standard_normal((2, DIM + 1)), identities="a", modality="visible")
    with pytest.raises(ValueError, match="modality"):
        g.add(rng.standard_normal((1, DIM)), identities="a", modality="thermal")
    with pytest.raises(ValueError, match="NaN"):
        g.add(np.full((1, DIM), np.nan), identities="a", modality="visible")
    with pytest.raises(ValueError, match="got 2"):
        g.add(rng.standard_normal((3, DIM)), identities=["a", "b"], modality="visible")
    with pytest.raises(ValueError, match="k must be"):
        g.search(rng.standard_normal(DIM), "visible", k=0)
    assert len(g) == 0


def test_remove(rng):
    g = Gallery()
    ids = g.add(rng.standard_normal((4, DIM)), identities=["a", "b", "a", "c"], modality="visible")
    assert g.remove(identity="a") == 2
    assert g.remove(entry_ids=[ids[3]]) == 1
    assert g.remove(entry_ids=[ids[3]]) == 0
    assert [e.identity for e in g.entries] == ["b"]
    new = g.add(rng.standard_normal((1, DIM)), identities="d", modality="infrared")
    assert new[0] not in ids  # entry ids never reused
    other = Gallery().add(rng.standard_normal((4, DIM)), identities="x", modality="visible")
    assert not set(other) & set(ids + new)  # nor shared by two writers


def test_entry_order_is_insertion_order_across_modalities(rng):
    g = Gallery()
    g.add(rng.standard_normal((2, DIM)), identities=["v0", "v1"], modality="visible")
    g.add(rng.standard_normal((1, DIM)), identities="i0", modality="infrared")
    g.add(rng.standard_normal((1, DIM)), identities="v2", modality="visible")
    assert [e.identity for e in g.entries] == ["v0", "v1", "i0", "v2"]
    emb, entries = g.snapshot()
    for row, e in zip(emb, entries):  # rows stay with their entries
        assert g.search(row, e.modality, k=1, target=e.modality)[0][0].entry == e


def test_save_load_roundtrip(tmp_path, rng):
    vis, ir, ids = _identity_set(rng)
    g = Gallery(path=tmp_path / "g")
    g.add(vis, identities=ids, modality="visible", camera="cam1", thumbnails="thumb.png", timestamps=123.5)
    g.add(ir, identities=ids, modality="infrared", camera="cam3")
    g.set_calibration(calibrate_cross_modality(g, 0.1))
    g.save()
    h = Gallery.load(tmp_path / "g", verify=True)
    assert len(h) == len(g) and h.embedding_dim == DIM
    assert np.array_equal(h.embeddings, g.embeddings)
    assert h.entries == g.entries
    assert h.threshold == g.threshold and h.calibration.tmr == g.calibration.tmr
    manifest = json.loads((tmp_path / "g" / "gallery.json").read_text())
    assert manifest["version"] == GALLERY_VERSION and manifest["count"] == len(g)
    # second save: one generation of data files remains
    h.remove(identity="id0")
    h.save()
    files = sorted(p.name for p in (tmp_path / "g").iterdir())
    assert sum(f.startswith("embeddings.") for f in files) == 1 and sum(f.startswith("meta.") for f in files) == 1
    assert len(Gallery.load(tmp_path / "g")) == len(g) - 6


def test_load_errors(tmp_path, rng):
    with pytest.raises(FileNotFoundError, match="no gallery"):
        Gallery.load(tmp_path / "nothing")
    g = Gallery(path=tmp_path / "g")
    g.add(rng.standard_normal((3, DIM)), identities="a", modality="visible")
    g.save()
    manifest = json.loads((tmp_path / "g" / "gallery.json").read_text())
    (tmp_path / "g" / manifest["meta_file"]).write_text('{"entry_id": 0}\n')
    with pytest.raises(GalleryError, match="entries"):
        Gallery.load(tmp_path / "g")
    (tmp_path / "g" / "gallery.json").write_text("{not json")
    with pytest.raises(GalleryError, match="JSON"):
        Gallery.load(tmp_path / "g")
    (tmp_path / "g" / "gallery.json").write_text(json.dumps({**manifest, "version": 99}))
    with pytest.raises(GalleryError, match="upgrade"):
        Gallery.load(tmp_path / "g")
    (tmp_path / "g" / "gallery.json").write_text(json.dumps(manifest))
    (tmp_path / "g" / manifest["meta_file"]).unlink()
    with pytest.raises(GalleryError, match="missing data files"):
        Gallery.load(tmp_path / "g", retries=2)
    g.save(tmp_path / "h")
    assert len(Gallery.load(tmp_path / "h")) == 3  # saved to another folder: every entry
    with pytest.raises(GalleryError, match="-d embeddings"):
        Gallery.open(tmp_path / "h", embedding_dim=DIM + 1)


def test_transaction_serialises_writers(tmp_path, rng):
    path = tmp_path / "g"
    errors = []

    def writer(name):
        try:
            for _ in range(5):
                with Gallery.transaction(path, embedding_dim=DIM) as g:
                    g.add(rng.standard_normal((1, DIM)), identities=name, modality="visible")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"w{i}",)) for i in range(3)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors
    assert len(Gallery.load(path)) == 15


_WRITER = textwrap.dedent("""
    import sys, numpy as np
    from spot_edge.gallery import Gallery
    path, n, dim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    g = Gallery(embedding_dim=dim, path=path)
    rng = np.random.default_rng(1)
    version = 0
    print("ready", flush=True)
    while True:
        version += 1
        # every entry of one version carries the version in its identity and in its embedding
        g.remove(identity=f"v{version - 1}")
        emb = rng.standard_normal((n, dim)).astype(np.float32)
        emb[:, 0] = 1000.0 * version
        g.add(emb, identities=f"v{version}", modality="visible", camera="c")
        g.save()
        if version == 1:
            print("saved", flush=True)
""")


def test_gallery_survives_killed_writer(tmp_path):
    """SIGKILL a process that rewrites the gallery in a loop; every reload is one complete version."""
    path = tmp_path / "g"
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    rng = np.random.default_rng(5)
    for trial in range(3):
        shutil.rmtree(path, ignore_errors=True)
        proc = subprocess.Popen([sys.executable, str(script), str(path), "5000", "64"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout.readline().strip() == b"ready"
        assert proc.stdout.readline().strip() == b"saved"  # one complete save, then keep rewriting
        time.sleep(0.3 * rng.random())  # kill somewhere inside a later save
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        g = Gallery.load(path, verify=True)
        assert len(g) == 5000
        identities = {e.identity for e in g.entries}
        assert len(identities) == 1  # one version, never a mix
        # embedding rows belong to the same version as the metadata (column 0 dominates)
        assert np.all(np.argmax(np.abs(g.embeddings), axis=1) == 0)
        # a new writer process can continue from the surviving state
        g.add(np.ones((1, 64), np.float32), identities="after", modality="infrared")
        g.save()
        assert len(Gallery.load(path)) == 5001


def test_reader_in_other_process_while_writing(tmp_path):
    """Another process reads the gallery while this one keeps saving: every read is consistent."""
    path = tmp_path / "g"
    g = Gallery(embedding_dim=16, path=path)
    g.add(np.ones((10, 16)), identities="x", modality="visible")
    g.save()
    reader = textwrap.dedent(f"""
        import numpy as np
        from spot_edge.gallery import Gallery
        sizes = set()
        for _ in range(40):
            g = Gallery.load({str(path)!r}, verify=True)
            assert len(g.entries) == len(g.embeddings)
            sizes.add(len(g))
        print(len(sizes))
    """)
    proc = subprocess.Popen([sys.executable, "-c", reader], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    while proc.poll() is None:
        g.add(np.ones((1, 16)), identities="y", modality="infrared")
        g.save()
    out, err = proc.communicate()
    assert proc.returncode == 0, err.decode()


def test_calibrate_threshold_exact():
    genuine = np.array([0.9, 0.8, 0.7, 0.6, 0.3])
    impostor = np.linspace(0.0, 0.75, 100)  # top impostors 0.75, 0.742...
    cal = calibrate_threshold(genuine, impostor, target_fmr=0.01)
    assert cal.fmr <= 0.01 and (impostor >= cal.threshold).sum() == 1
    assert cal.tmr == pytest.approx(0.4)  # 0.9 and 0.8 reach it
    zero = calibrate_threshold(genuine, impostor, target_fmr=0.0)
    assert zero.fmr == 0.0 and zero.threshold > 0.75
    assert [c["target_fmr"] for c in cal.curve] == [1e-4, 1e-3, 1e-2, 1e-1]
    assert all(c["fmr"] <= c["target_fmr"] + 1e-12 for c in cal.curve)
    with pytest.raises(ValueError, match="genuine and impostor"):
        calibrate_threshold([], impostor)
    with pytest.raises(ValueError, match="target_fmr"):
        calibrate_threshold(genuine, impostor, 1.5)


def test_calibrate_cross_modality_gallery(rng):
    vis, ir, ids = _identity_set(rng, n_ids=8, per_id=4, noise=0.3)
    g = Gallery()
    g.add(vis, identities=ids, modality="visible")
    g.add(ir, identities=ids, modality="infrared")
    cal = calibrate_cross_modality(g, target_fmr=0.01)
    assert cal.num_genuine == 8 * 16 and cal.num_impostor == 8 * 4 * 7 * 4
    assert cal.fmr <= 0.01 and cal.tmr > 0.9
    gen, imp = pair_similarities(ir, ids, vis, ids)
    assert gen.size == cal.num_genuine and imp.size == cal.num_impostor
    g.set_calibration(cal)
    match, ok = g.best_match(ir[0], "infrared")
    assert match.identity == "id0" and ok
    _, ok = g.best_match(rng.standard_normal(DIM), "infrared")
    assert not ok


@pytest.mark.skipif(not faiss_available(), reason="faiss not installed (optional: pip install faiss-cpu)")
def test_faiss_matches_numpy(rng):
    g = Gallery()
    g.add(rng.standard_normal((500, DIM)), identities=[f"p{i}" for i in range(500)], modality="visible")
    q = rng.standard_normal((7, DIM))
    a = g.search(q, "infrared", k=5, backend="numpy")
    b = g.search(q, "infrared", k=5, backend="faiss")
    assert [[m.entry.entry_id for m in r] for r in a] == [[m.entry.entry_id for m in r] for r in b]
    assert np.allclose([[m.similarity for m in r] for r in a], [[m.similarity for m in r] for r in b], atol=1e-5)
    g.add(rng.standard_normal((1, DIM)), identities="new", modality="visible")  # invalidates the index
    assert len(g.search(q, "infrared", k=600, backend="faiss")[0]) == 501


@pytest.mark.skipif(not faiss_available(), reason="faiss not installed (optional: pip install faiss-cpu)")
def test_faiss_hnsw_index(rng):
    g = Gallery()
    g.faiss_index = "hnsw"
    g.add(rng.standard_normal((300, DIM)), identities=[f"p{i}" for i in range(300)], modality="visible")
    q = g.embeddings[:3] + 0.01 * rng.standard_normal((3, DIM)).astype(np.float32)
    res = g.search(q, "infrared", k=4, backend="faiss")
    assert [r[0].entry for r in res] == g.entries[:3] and all(len(r) == 4 for r in res)
    g.add(rng.standard_normal((1, DIM)), identities="new", modality="visible")  # extends the index
    assert g.search(g.embeddings[-1], "infrared", k=1, backend="faiss")[0][0].identity == "new"


def test_odd_identities_and_cameras_round_trip(tmp_path, rng):
    names = ["[/]", "[bold]x[/bold]", ":smile:", "line\nbreak", "nul\x00char", "名前 ünï©ødé", "lone \ud800 surrogate",
             "quote \" back \\ slash", "  spaces  ", "../../etc/passwd", "0"]
    g = Gallery(path=tmp_path / "g")
    ids = g.add(rng.standard_normal((len(names), DIM)), identities=names, modality="visible",
                camera=[f"cam {n}" for n in names], thumbnails=names)
    g.save()
    h = Gallery.load(tmp_path / "g", verify=True)
    assert [(e.entry_id, e.identity, e.camera, e.thumbnail) for e in h.entries] == \
        [(i, n, f"cam {n}", n) for i, n in zip(ids, names)]
    assert h.remove(identity="line\nbreak") == 1 and h.remove(identity="0") == 1


def test_large_finite_embeddings_are_normalised(rng):
    g = Gallery()
    unit = rng.standard_normal((3, DIM))
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    g.add(unit * np.array([[1e300], [1e-300], [3.0]]), identities="x", modality="visible")  # squares over/underflow
    assert np.allclose(g.embeddings, unit, atol=1e-6)


def test_model_identity_adopted_then_enforced(tmp_path, rng):
    from spot_edge.gallery import ModelIdentity, ModelMismatchError
    from spot_edge.preprocessing import PreprocessSpec

    class Embedder:  # what an Embedder exposes (spot_edge.backends.base)
        embedding_dim = DIM
        preprocessing = PreprocessSpec(height=64, width=32)
        config_fingerprint = "cfg-a"

    g = Gallery(path=tmp_path / "g")
    g.add(rng.standard_normal((2, DIM)), identities="a", modality="visible",
          model=ModelIdentity("cfg-a", DIM))  # partial: what a `spot-edge embed` sidecar knows
    g.save()
    g = Gallery.open(tmp_path / "g", model=Embedder())  # fills in the preprocessing
    assert g.dirty and g.model.preprocessing["height"] == 64
    g.save()
    stored = Gallery.load(tmp_path / "g")
    assert stored.model == ModelIdentity.of(Embedder())
    other = Embedder()
    other.config_fingerprint = "cfg-b"
    with pytest.raises(ModelMismatchError, match="config fingerprint cfg-a vs cfg-b"):
        Gallery.open(tmp_path / "g", model=other)
    with pytest.raises(ModelMismatchError, match="another model"):
        stored.search(rng.standard_normal(DIM), "infrared", model=other)
    assert len(stored.search(rng.standard_normal(DIM), "infrared", model=Embedder())[0]) == 2


def _write_version_1_gallery(folder, rng, n=4):
    """A gallery as spot-edge wrote it before format version 2: integer entry ids, no model."""
    import hashlib

    folder.mkdir()
    emb = rng.standard_normal((n, DIM)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    np.save(folder / "embeddings.000003.npy", emb)
    meta = "".join(json.dumps({"entry_id": i, "identity": f"old{i}", "modality": "visible", "camera": "c",
                               "timestamp": 1.0, "track_id": None, "thumbnail": None}) + "\n" for i in range(n))
    (folder / "meta.000003.jsonl").write_text(meta)
    (folder / "gallery.json").write_text(json.dumps({
        "format": "spot-edge-gallery", "version": 1, "spot_edge_version": "0.1.0", "embedding_dim": DIM, "count": n,
        "generation": 3, "next_entry_id": n, "embeddings_file": "embeddings.000003.npy",
        "meta_file": "meta.000003.jsonl", "embeddings_sha256": hashlib.sha256(emb.tobytes()).hexdigest(),
        "meta_sha256": hashlib.sha256(meta.encode()).hexdigest(), "calibration": None, "saved_at": 0.0}))
    return emb


def test_version_1_gallery_loads_and_adopts_a_model(tmp_path, rng):
    from spot_edge.gallery import ModelIdentity

    emb = _write_version_1_gallery(tmp_path / "g", rng)
    g = Gallery.load(tmp_path / "g", verify=True)
    assert [e.entry_id for e in g.entries] == ["0", "1", "2", "3"] and g.model is None
    assert np.array_equal(g.embeddings, emb)
    g = Gallery.open(tmp_path / "g", model=ModelIdentity("cfg-a", DIM))  # the first model used is adopted
    assert g.remove(entry_ids=[1]) == 1
    g.add(rng.standard_normal((1, DIM)), identities="new", modality="infrared")
    g.save()
    manifest = json.loads((tmp_path / "g" / "gallery.json").read_text())
    assert manifest["version"] == GALLERY_VERSION and manifest["model"]["config_fingerprint"] == "cfg-a"
    assert [e.identity for e in Gallery.load(tmp_path / "g").entries] == ["old0", "old2", "old3", "new"]


def test_flush_picks_up_other_writers(tmp_path, rng):
    a = Gallery(path=tmp_path / "g")
    a.add(rng.standard_normal((1, DIM)), identities="a", modality="visible")
    assert a.flush() is True and a.flush() is False
    b = Gallery.open(tmp_path / "g")
    b.add(rng.standard_normal((2, DIM)), identities="b", modality="infrared")
    b.save()
    assert len(a) == 1 and a.flush() is False and len(a) == 3  # not dirty: refreshed from the folder
    assert a.identities() == ["a", "b"]
