"""One gallery, many writers, nothing lost: every save merges its writer's additions and removals
with what the others saved (spot_edge.gallery.transaction)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock

from spot_edge.gallery import Gallery, GalleryError, ModelIdentity, ModelMismatchError, calibrate_threshold
from spot_edge.gallery import transaction as gallery_transaction
from spot_edge.pipeline import CameraInput, Pipeline, PipelineConfig, PoseResult
from spot_edge.pipeline.events import read_events
from spot_edge.pipeline.pose_sources import people_from_keypoints, render_frame_maps
from spot_edge.pose.synthetic_skeletons import standing_people

sys.path.insert(0, str(Path(__file__).parent))
from pipeline_fakes import FakeCamera, FakeEmbedder  # noqa: E402

DIM = 8
ROOT = Path(__file__).resolve().parents[1]


def _rows(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _base_gallery(path: Path, n: int = 5) -> list[str]:
    g = Gallery(embedding_dim=DIM, path=path)
    ids = g.add(_rows(100, n), identities=[f"base-{i}" for i in range(n)], modality="visible", camera="base")
    g.save()
    return ids


def test_two_writers_keep_each_others_entries(tmp_path):
    """The reported loss: a long-lived writer (run --observe) saved over entries another process
    enrolled meanwhile (55 entries ended as 11)."""
    path = tmp_path / "g"
    base = _base_gallery(path)
    observer = Gallery.open(path)  # opened at the start of a run
    enroller = Gallery.open(path)
    enrolled = enroller.add(_rows(1, 44), identities="enrolled", modality="infrared")
    enroller.remove(entry_ids=[base[0]])
    enroller.save()
    seen = observer.add(_rows(2, 6), identities="seen", modality="visible")
    observer.remove(entry_ids=[base[1]])
    observer.save()  # a transaction: merged with the enroller's save

    stored = Gallery.load(path, verify=True)
    assert {e.entry_id for e in stored.entries} == set(base[2:]) | set(enrolled) | set(seen)
    assert len(stored) == 3 + 44 + 6
    by_id = dict(zip((e.entry_id for e in stored.entries), stored.embeddings))
    assert np.allclose([by_id[i] for i in enrolled], _unit(_rows(1, 44)), atol=1e-6)
    assert np.allclose([by_id[i] for i in seen], _unit(_rows(2, 6)), atol=1e-6)
    # the saving writer's view is refreshed; the other one catches up with refresh()/flush()
    assert {e.entry_id for e in observer.entries} == {e.entry_id for e in stored.entries}
    assert enroller.flush() is False and len(enroller) == len(stored)


def test_changes_made_while_saving_are_kept(tmp_path):
    """Threads add while another thread saves; a second object writes the same folder meanwhile."""
    path = tmp_path / "g"
    g = Gallery(embedding_dim=DIM, path=path)
    other = Gallery(embedding_dim=DIM, path=path)
    added: list[str] = []
    other_ids: list[str] = []
    stop = threading.Event()

    def adder():
        for i in range(150):
            added.extend(g.add(_rows(i, 1), identities=f"a{i}", modality="visible"))
        deadline = time.monotonic() + 30   # on a loaded machine the other writer may not have run yet
        while not other_ids and time.monotonic() < deadline:
            time.sleep(0.01)
        stop.set()

    def other_writer():
        while not stop.is_set():
            other_ids.extend(other.add(_rows(7, 1), identities="o", modality="infrared"))
            other.save()

    threads = [threading.Thread(target=adder), threading.Thread(target=other_writer)]
    [t.start() for t in threads]
    while not stop.is_set():
        g.save()
    [t.join() for t in threads]
    g.save()
    other.save()
    stored = {e.entry_id for e in Gallery.load(path).entries}
    assert stored == set(added) | set(other_ids) and len(added) == 150 and other_ids
    assert not g.dirty and {e.entry_id for e in g.entries} == stored


def test_calibration_and_removal_by_identity_merge(tmp_path, rng):
    path = tmp_path / "g"
    base = _base_gallery(path)
    a, b = Gallery.open(path), Gallery.open(path)
    cal = calibrate_threshold([0.9, 0.8], np.linspace(0, 0.5, 50), 0.1)
    a.set_calibration(cal)
    a.remove(identity="base-3")
    a.save()
    late = b.add(_rows(3, 2), identities="base-3", modality="visible")  # same name, enrolled later by b
    b.save()
    stored = Gallery.load(path)
    assert stored.threshold == pytest.approx(cal.threshold)  # b did not set one: a's is kept
    # a removed the base-3 entry it had seen; b's new base-3 entries stay
    assert {e.entry_id for e in stored.entries if e.identity == "base-3"} == set(late)
    assert base[3] not in {e.entry_id for e in stored.entries}


def test_model_identity_conflict_between_writers_keeps_changes(tmp_path):
    path = tmp_path / "g"
    x = ModelIdentity("model-x", DIM, {"height": 64, "width": 32})
    y = ModelIdentity("model-y", DIM, {"height": 64, "width": 32})
    a, b = Gallery(path=path), Gallery(path=path)
    a_ids = a.add(_rows(1, 3), identities="a", modality="visible", model=x)
    b.add(_rows(2, 2), identities="b", modality="visible", model=y)
    b.save()
    with pytest.raises(ModelMismatchError, match="model-y vs model-x"):
        a.save()
    assert len(Gallery.load(path)) == 2 and Gallery.load(path).model.config_fingerprint == "model-y"
    assert a.dirty and len(a) == 3  # nothing lost: still in memory, saved elsewhere
    a.save(tmp_path / "elsewhere")
    assert [e.entry_id for e in Gallery.load(tmp_path / "elsewhere").entries] == a_ids


def test_failed_save_keeps_the_journal(tmp_path):
    path = tmp_path / "g"
    _base_gallery(path)
    g = Gallery.open(path)
    mine = g.add(_rows(4, 2), identities="mine", modality="infrared")
    other = Gallery.open(path)
    other.add(_rows(5, 1), identities="other", modality="infrared")
    other.save()
    manifest = json.loads((path / "gallery.json").read_text())
    (path / manifest["meta_file"]).write_text("damaged\n")  # the merge must read the folder: it fails
    with pytest.raises(GalleryError, match="the manifest says"):
        g.save()
    assert g.dirty
    other.save(replace=True)  # repaired by rewriting it
    g.save()
    assert {e.identity for e in Gallery.load(path).entries} >= {"mine", "other"}
    assert set(mine) <= {e.entry_id for e in Gallery.load(path).entries}


def test_replace_and_save_elsewhere(tmp_path):
    path = tmp_path / "g"
    _base_gallery(path, 4)
    fresh = Gallery(embedding_dim=DIM, path=path)
    ids = fresh.add(_rows(6, 2), identities="new", modality="visible")
    fresh.save()  # a new object over an existing gallery: merged, nothing replaced
    assert len(Gallery.load(path)) == 6
    fresh.save(replace=True)  # explicitly replaced
    assert [e.entry_id for e in Gallery.load(path).entries] == [e.entry_id for e in fresh.entries]
    assert len(fresh) == 6 and set(ids) <= {e.entry_id for e in Gallery.load(path).entries}


def test_a_stuck_writer_gives_a_clear_error(tmp_path, monkeypatch):
    path = tmp_path / "g"
    _base_gallery(path, 2)
    monkeypatch.setattr(gallery_transaction, "LOCK_TIMEOUT_S", 0.2)
    g = Gallery.open(path)
    g.add(_rows(1, 1), identities="x", modality="visible")
    with FileLock(str(path / "gallery.lock")):
        with pytest.raises(GalleryError, match="locked by another writer"):
            g.save()
    g.save()
    assert len(Gallery.load(path)) == 3


# ----------------------------------------------------------------------------- processes

_ENROLLER = textwrap.dedent("""
    import json, sys
    import numpy as np
    from spot_edge.gallery import Gallery
    path, name, seed, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    rows = np.random.default_rng(seed).standard_normal((n, 8)).astype(np.float32)
    ids = []
    for i in range(n):  # one transaction per enrolment, as `spot-edge gallery enroll`
        with Gallery.transaction(path, embedding_dim=8) as g:
            ids += g.add(rows[i], identities=f"{name}-{i}", modality="visible", camera=name)
    print(json.dumps(ids))
""")

_REMOVER = textwrap.dedent("""
    import json, sys
    from spot_edge.gallery import Gallery
    path, ids = sys.argv[1], sys.argv[2].split(",")
    removed = 0
    for entry_id in ids:  # as `spot-edge gallery remove --entry-id`
        with Gallery.transaction(path) as g:
            removed += g.remove(entry_ids=[entry_id])
    print(json.dumps(removed))
""")

_LONG_LIVED = textwrap.dedent("""
    import json, sys
    import numpy as np
    from spot_edge.gallery import Gallery
    path, seed, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rows = np.random.default_rng(seed).standard_normal((n, 8)).astype(np.float32)
    g = Gallery.open(path)  # one object for the whole run, flushed now and then, as the pipeline
    added, removed = [], []
    for i in range(n):
        added += g.add(rows[i], identities=f"long-{i}", modality="infrared", camera="long")
        if i % 3 == 2:
            g.remove(entry_ids=[added[-2]])
            removed.append(added[-2])
        g.flush()
    g.flush()
    print(json.dumps({"added": added, "removed": removed}))
""")


class _OnePerson:
    """Pose source: one standing person in every frame."""

    def __call__(self, frame) -> PoseResult:
        h, w = frame.image.shape[:2]
        people = people_from_keypoints(standing_people([w / 2], [0.1 * h], [0.7 * h]), (h, w))
        return PoseResult(people=people, maps=render_frame_maps(people, (h, w)), stride=8.0)


def _spawn(script: str, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=str(ROOT))


def test_pipeline_observing_while_other_processes_enroll_and_remove(tmp_path):
    path = tmp_path / "g"
    base = _base_gallery(path, 12)
    gallery = Gallery.open(path, model=FakeEmbedder())
    frames = [np.random.default_rng(i).integers(0, 255, (120, 160, 3), dtype=np.uint8) for i in range(6)]
    camera = FakeCamera(frames, fps=60, loop=True)
    config = PipelineConfig(observe=True, observe_novelty=1.01, flush_interval=0.02, write_video=False,
                            frames_every=0, save_thumbnails=False)
    pipe = Pipeline([CameraInput("cam", "visible", camera, _OnePerson())], FakeEmbedder(), gallery, config,
                    output_dir=tmp_path / "out")
    pipe.start()
    procs = {"e1": _spawn(_ENROLLER, path, "e1", 11, 8), "e2": _spawn(_ENROLLER, path, "e2", 12, 8),
             "rm": _spawn(_REMOVER, path, ",".join(base[::2])), "long": _spawn(_LONG_LIVED, path, 13, 9)}
    results = {}
    try:
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, f"{name}: {err}"
            results[name] = json.loads(out)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
        time.sleep(0.1)  # a few more observations and flushes after the others finished
        pipe.stop()
        summary = pipe.close()
    assert not summary.errors, summary.errors

    observed = {e["observed_entry_id"]: e["observed_identity"] for e in read_events(tmp_path / "out" / "events.jsonl")
                if e.get("observed_entry_id") is not None}
    assert len(observed) >= 3 and results["rm"] == 6
    long_kept = [i for i in results["long"]["added"] if i not in results["long"]["removed"]]
    expected = set(base[1::2]) | set(results["e1"]) | set(results["e2"]) | set(long_kept) | set(observed)

    stored = Gallery.load(path, verify=True)
    ids = [e.entry_id for e in stored.entries]
    assert len(ids) == len(set(ids)) == len(expected) and set(ids) == expected
    by_id = {e.entry_id: (e, row) for e, row in zip(stored.entries, stored.embeddings)}
    for name, seed in (("e1", 11), ("e2", 12)):  # every enrolled entry, with its own embedding
        for i, (entry_id, row) in enumerate(zip(results[name], _unit(_rows(seed, 8)))):
            entry, stored_row = by_id[entry_id]
            assert (entry.identity, entry.camera) == (f"{name}-{i}", name)
            assert np.allclose(stored_row, row, atol=1e-6)
    for entry_id, identity in observed.items():
        assert by_id[entry_id][0].identity == identity and by_id[entry_id][0].camera == "cam"
    assert {e.entry_id for e in gallery.entries} == expected  # the pipeline's own view is current
    assert stored.model is not None and stored.model.embedding_dim == DIM  # adopted from the embedder
