"""``spot-edge gallery ... | match`` through typer's test runner, from a temporary working directory
with relative paths (as users type them), with a fake embedder."""

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
from spot_edge.cli.app import app as root_app  # noqa: E402
from spot_edge.gallery import Gallery  # noqa: E402

runner = CliRunner()


@pytest.fixture
def cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def fake_model(monkeypatch):
    emb = FakeEmbedder()
    monkeypatch.setattr(gallery_cli, "load_embedder", lambda *a, **k: emb)
    return emb


def labelled_npz(path: Path, rng, n_ids=5, per=3, dim=8, names=None, **extra):
    """``embeddings`` clustered by identity in both modalities, ``identities``, ``modalities``."""
    names = names or [f"p{i}" for i in range(n_ids)]
    centres = rng.standard_normal((len(names), dim))
    emb, ids, mods = [], [], []
    for m in ("visible", "infrared"):
        for i, name in enumerate(names):
            for _ in range(per):
                emb.append(centres[i] + 0.2 * rng.standard_normal(dim))
                ids.append(name)
                mods.append(m)
    np.savez(path, embeddings=np.asarray(emb, np.float32), identities=np.asarray(ids), modalities=np.asarray(mods),
             **extra)
    return path


def embed_sidecar(npy: Path, modality: str, fingerprint: str | None = "cfg-a", size=(64, 32), dim=8) -> Path:
    """The sidecar ``spot-edge embed`` writes beside its .npy (Embedder.describe() as 'backend')."""
    n = len(np.load(npy))
    info = {"files": [f"q{i}.png" for i in range(n)], "modality": modality,
            "backend": {"backend": "onnxruntime", "embedding_dim": dim, "input_size": list(size),
                        "heatmap_size": [size[0] // 8, size[1] // 8], "config_fingerprint": fingerprint}}
    side = npy.with_name(npy.name + ".json")
    side.write_text(json.dumps(info))
    return side


def cli(*args):
    return runner.invoke(root_app, [str(a) for a in args])


def test_gallery_commands(cwd, rng):
    labelled_npz(Path("lab.npz"), rng)
    r = cli("gallery", "enroll", "g", "--embeddings", "lab.npz", "--camera", "cam1", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["added"] == 30 and (cwd / "g" / "gallery.json").is_file()
    r = cli("gallery", "calibrate", "g", "--target-fmr", "0.05", "--json")
    assert r.exit_code == 0, r.output
    cal = json.loads(r.stdout)
    assert cal["fmr"] <= 0.05 and cal["tmr"] > 0.5
    assert Gallery.load(cwd / "g").threshold == pytest.approx(cal["threshold"])

    r = cli("gallery", "list", "g", "--json")
    summary = json.loads(r.stdout)
    assert summary["entries"] == 30 and summary["identities"]["p0"] == {"visible": 3, "infrared": 3}
    r = cli("gallery", "list", "g")
    assert r.exit_code == 0 and "p4" in r.stdout and "threshold" in r.stdout

    # match: query embeddings (infrared) against the visible entries
    q = np.load("lab.npz")["embeddings"][15:18]
    np.save("q.npy", q)
    r = cli("match", "g", "--embeddings", "q.npy", "--modality", "infrared", "--top-k", "3", "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)["results"]
    assert [x["identity"] for x in res] == ["p0"] * 3
    assert all(m["entry"]["modality"] == "visible" for x in res for m in x["matches"])
    r = cli("match", "g", "--embeddings", "q.npy", "--top-k", "1000")  # more than the gallery holds
    assert r.exit_code == 0 and "p0" in r.stdout

    r = cli("gallery", "remove", "g", "--identity", "p0")
    assert r.exit_code == 0 and len(Gallery.load(cwd / "g")) == 24
    r = cli("gallery", "remove", "g", "--identity", "nobody")
    assert r.exit_code == 1 and "nothing matched" in r.output
    entry = Gallery.load(cwd / "g").entries[0]
    r = cli("gallery", "remove", "g", "--entry-id", entry.entry_id)
    assert r.exit_code == 0 and entry.entry_id not in {e.entry_id for e in Gallery.load(cwd / "g").entries}


def test_user_text_is_printed_as_it_is(cwd, rng):
    """Identities and cameras are data: never rich markup, emoji codes or escapes (an identity
    named `[/]` used to crash `gallery list` for good)."""
    names = ["[/]", "[bold]x[/bold]", ":smile:", "ünï©ødé 名前", "tab\there", "quote \" and \\ back"]
    labelled_npz(Path("odd.npz"), rng, names=names, per=1, cameras=np.asarray(["[red]cam[/red]"] * 2 * len(names)))
    r = cli("gallery", "enroll", "g", "--embeddings", "odd.npz")
    assert r.exit_code == 0, r.output
    stored = Gallery.load(cwd / "g")
    assert stored.identities() == sorted(names)  # round-trip exact
    assert {e.camera for e in stored.entries} == {"[red]cam[/red]"}
    for args in (["gallery", "list", "g"], ["gallery", "list", "g", "--entries"]):
        r = cli(*args)
        assert r.exit_code == 0, r.output
        for name in ("[/]", "[bold]x[/bold]", ":smile:", "ünï©ødé 名前"):
            assert name in r.stdout
    assert "[red]cam[/red]" in cli("gallery", "list", "g", "--entries").stdout
    np.save("q.npy", np.load("odd.npz")["embeddings"][len(names):])
    r = cli("match", "g", "--embeddings", "q.npy", "--top-k", "1")
    assert r.exit_code == 0 and "[bold]x[/bold]" in r.stdout and ":smile:" in r.stdout
    r = cli("gallery", "remove", "g", "--identity", "[/]")
    assert r.exit_code == 0 and "[/]" not in Gallery.load(cwd / "g").identities()


def test_model_fingerprint_checked_for_embedding_files(cwd, rng):
    np.save("a.npy", rng.standard_normal((4, 8)).astype(np.float32))
    embed_sidecar(Path("a.npy"), "visible", fingerprint="cfg-a")
    r = cli("gallery", "enroll", "g", "--embeddings", "a.npy", "-i", "alice", "--json")
    assert r.exit_code == 0, r.output
    model = Gallery.load(cwd / "g").model
    assert model.config_fingerprint == "cfg-a" and model.preprocessing == {"height": 64, "width": 32}
    assert Gallery.load(cwd / "g").entries[0].modality == "visible"  # from the sidecar

    np.save("b.npy", rng.standard_normal((2, 8)).astype(np.float32))
    embed_sidecar(Path("b.npy"), "infrared", fingerprint="cfg-b")
    for args in (["gallery", "enroll", "g", "--embeddings", "b.npy", "-i", "bob"],
                 ["match", "g", "--embeddings", "b.npy"]):
        r = cli(*args)
        assert r.exit_code == 2 and "another model" in r.output and "cfg-a vs cfg-b" in r.output, r.output
    assert len(Gallery.load(cwd / "g")) == 4

    embed_sidecar(Path("b.npy"), "infrared", fingerprint="cfg-a", size=(128, 64))  # same config, other input
    r = cli("match", "g", "--embeddings", "b.npy")
    assert r.exit_code == 2 and "preprocessing height 64 vs 128" in r.output

    np.save("bare.npy", rng.standard_normal((2, 8)).astype(np.float32))  # says nothing: dimension only
    r = cli("gallery", "enroll", "g", "--embeddings", "bare.npy", "-i", "carol", "--modality", "infrared")
    assert r.exit_code == 0 and "does not say which model" in r.output
    assert len(Gallery.load(cwd / "g")) == 6


def test_enroll_and_match_image_folders(cwd, fake_model, monkeypatch):
    """Person crops with keypoint sidecars (.npy), identities from labels.csv."""
    import cv2

    from pipeline_fakes import PEOPLE_BGR, draw_person
    from spot_edge.pose.synthetic_skeletons import standing_people

    pids = {"alice": 1, "bob": 2}

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
                rows.append(f"{name}{j}.png,{pids[name]},1,{modality},gallery")
        (folder / "labels.csv").write_text("\n".join(rows) + "\n")

    crops(Path("vis"), "visible")
    crops(Path("ir"), "infrared")
    r = cli("gallery", "enroll", "g", "--images", "vis", "--model", "x", "--modality", "visible", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["identities"] == ["1", "2"]
    stored = Gallery.load(cwd / "g")
    entry = stored.entries[0]
    assert entry.thumbnail == str(cwd / "vis" / "alice0.png") and entry.modality == "visible"
    assert stored.model.embedding_dim == 8 and stored.model.preprocessing["height"] == 64  # the embedder's
    r = cli("match", "g", "--images", "ir", "--model", "x", "--modality", "infrared", "--threshold", "0.5", "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)["results"]
    assert [(x["query"], x["identity"]) for x in res] == [("alice0.png", "1"), ("alice1.png", "1"),
                                                          ("bob0.png", "2"), ("bob1.png", "2")]

    other = FakeEmbedder()
    other.preprocessing = type(other.preprocessing)(height=128, width=64)  # another model's input size
    monkeypatch.setattr(gallery_cli, "load_embedder", lambda *a, **k: other)
    r = cli("gallery", "enroll", "g", "--images", "vis", "--model", "y")
    assert r.exit_code == 2 and "preprocessing height 64 vs 128" in r.output
    assert len(Gallery.load(cwd / "g")) == 4


def test_remove_non_finite_repairs_a_damaged_gallery(cwd, rng):
    g = Gallery(path=cwd / "g")
    ids = g.add(rng.standard_normal((3, 8)), identities=["a", "b", "c"], modality="visible")
    g.save()
    manifest = json.loads((cwd / "g" / "gallery.json").read_text())
    emb = np.load(cwd / "g" / manifest["embeddings_file"])
    emb[1, 2] = np.nan
    np.save(cwd / "g" / manifest["embeddings_file"], emb)  # damaged in place (checksums not verified)
    r = cli("gallery", "list", "g")
    assert r.exit_code == 2 and "NaN" in r.output and "--non-finite" in r.output
    r = cli("gallery", "remove", "g", "--non-finite")
    assert r.exit_code == 0, r.output
    assert [e.entry_id for e in Gallery.load(cwd / "g", verify=True).entries] == [ids[0], ids[2]]
