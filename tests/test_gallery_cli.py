"""``spot-edge gallery ... | match`` through typer's test runner, with a fake embedder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from pipeline_fakes import FakeEmbedder  # noqa: E402

from spot_edge.cli import gallery as gallery_cli  # noqa: E402
from spot_edge.cli import run as run_cli  # noqa: E402
from spot_edge.cli.app import app as root_app  # noqa: E402
from spot_edge.gallery import Gallery  # noqa: E402

runner = CliRunner()

@pytest.fixture
def fake_model(monkeypatch):
    emb = FakeEmbedder()
    monkeypatch.setattr(run_cli, "load_embedder", lambda *a, **k: emb)
    monkeypatch.setattr(gallery_cli, "load_embedder", lambda *a, **k: emb)
    return emb

def _labelled_npz(path: Path, rng, n_ids=5, per=3, dim=8):
    centres = rng.standard_normal((n_ids, dim))
    emb, ids, mods = [], [], []
    for m in ("visible", "infrared"):
        for i in range(n_ids):
            for _ in range(per):
                emb.append(centres[i] + 0.2 * rng.standard_normal(dim))
                ids.append(f"p{i}")
                mods.append(m)
    np.savez(path, embeddings=np.asarray(emb, np.float32), identities=np.asarray(ids), modalities=np.asarray(mods))
    return path

def test_gallery_commands(tmp_path, rng):
    npz = _labelled_npz(tmp_path / "lab.npz", rng)
    g = tmp_path / "g"
    r = runner.invoke(root_app, ["gallery", "enroll", str(g), "--embeddings", str(npz), "--camera", "cam1",
                                    "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["added"] == 30
    r = runner.invoke(root_app, ["gallery", "calibrate", str(g), "--target-fmr", "0.05", "--json"])
    assert r.exit_code == 0, r.output
    cal = json.loads(r.stdout)
    assert cal["fmr"] <= 0.05 and cal["tmr"] > 0.5
    assert Gallery.load(g).threshold == pytest.approx(cal["threshold"])

    r = runner.invoke(root_app, ["gallery", "list", str(g), "--json"])
    summary = json.loads(r.stdout)
    assert summary["entries"] == 30 and summary["identities"]["p0"] == {"visible": 3, "infrared": 3}
    assert runner.invoke(root_app, ["gallery", "list", str(g)]).exit_code == 0

    # match: query embeddings (infrared) against the visible entries
    q = np.load(npz)["embeddings"][15:18]
    np.save(tmp_path / "q.npy", q)
    r = runner.invoke(root_app, ["match", str(g), "--embeddings", str(tmp_path / "q.npy"), "--modality",
                                    "infrared", "--top-k", "3", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)["results"]
    assert [x["identity"] for x in res] == ["p0"] * 3
    assert all(m["entry"]["modality"] == "visible" for x in res for m in x["matches"])
    assert runner.invoke(root_app, ["match", str(g), "--embeddings", str(tmp_path / "q.npy")]).exit_code == 0

    r = runner.invoke(root_app, ["gallery", "remove", str(g), "--identity", "p0"])
    assert r.exit_code == 0 and len(Gallery.load(g)) == 24
    r = runner.invoke(root_app, ["gallery", "remove", str(g), "--identity", "nobody"])
    assert r.exit_code == 1 and "nothing matched" in r.output


def test_gallery_errors(tmp_path):
    r = runner.invoke(root_app, ["gallery", "list", str(tmp_path / "none")])
    assert r.exit_code == 2 and "no gallery" in r.output
    np.save(tmp_path / "e.npy", np.ones((2, 8), np.float32))
    r = runner.invoke(root_app, ["gallery", "enroll", str(tmp_path / "g"), "--embeddings", str(tmp_path / "e.npy")])
    assert r.exit_code == 2 and "--identity" in r.output
    r = runner.invoke(root_app, ["gallery", "enroll", str(tmp_path / "g"), "--embeddings", str(tmp_path / "e.npy"),
                                    "--identity", "x", "--modality", "thermal"])
    assert r.exit_code == 2 and "modality" in r.output
    r = runner.invoke(root_app, ["gallery", "enroll", str(tmp_path / "g"), "--embeddings", str(tmp_path / "e.npy"),
                                    "--identity", "x"])
    assert r.exit_code == 0
    r = runner.invoke(root_app, ["gallery", "calibrate", str(tmp_path / "g")])
    assert r.exit_code == 2 and "infrared" in r.output  # needs both modalities

def test_enroll_and_match_image_folders(tmp_path, fake_model):
    """Person crops with keypoint sidecars (.npy), identities from labels.csv."""
    import cv2

    from spot_edge.pose.synthetic_skeletons import standing_people
    from pipeline_fakes import PEOPLE_BGR, draw_person

    def crops(folder: Path, modality: str):
        folder.mkdir()
        rows = ["file,pid,camid,modality,split"]
        for name, colour in PEOPLE_BGR.items():
            for j in range(2):
                image = np.full((128, 64, 3), 30, np.uint8)
                kp = standing_people([32], [8], [110])
                if modality == "infrared":
                    b, g, r = colour
                    colour = (int(0.299 * r + 0.587 * g + 0.114 * b),) * 3
                draw_person(image, kp[0], colour, 110)
                cv2.imwrite(str(folder / f"{name}{j}.png"), image)
                np.save(folder / f"{name}{j}.npy", kp[0].astype(np.float32))
                rows.append(f"{name}{j}.png,{name},1,{modality},gallery")
        (folder / "labels.csv").write_text("\n".join(rows) + "\n")

    crops(tmp_path / "vis", "visible")
    crops(tmp_path / "ir", "infrared")
    g = tmp_path / "g"
    r = runner.invoke(root_app, ["gallery", "enroll", str(g), "--images", str(tmp_path / "vis"), "--model", "x",
                                    "--modality", "visible", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["identities"] == ["alice", "bob"]
    entry = Gallery.load(g).entries[0]
    assert entry.thumbnail.endswith("alice0.png") and entry.modality == "visible"
    r = runner.invoke(root_app, ["match", str(g), "--images", str(tmp_path / "ir"), "--model", "x",
                                    "--modality", "infrared", "--threshold", "0.5", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)["results"]
    assert [(x["query"], x["identity"]) for x in res] == [("alice0.png", "alice"), ("alice1.png", "alice"),
                                                          ("bob0.png", "bob"), ("bob1.png", "bob")]
