"""The trainer and evaluation plumbing, with the tiny random model (fast)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from assetdb.demo import shapes
from assetdb.errors import AssetdbError
from assetdb.training.metrics import recall_at_k
from assetdb.training.pairs import load_pairs, split_pairs
from tests.conftest import run_cli
from tests.images import solid


def test_load_pairs_jsonl_and_csv(tmp_path):
    solid(tmp_path / "img" / "a.png", (255, 0, 0))
    solid(tmp_path / "img" / "b.png", (0, 0, 255))
    (tmp_path / "p.jsonl").write_text(
        '{"image": "img/a.png", "caption": "a red square"}\n\n'
        '{"image_path": "img/b.png", "text": "a blue square"}\n')
    (tmp_path / "p.csv").write_text("image,caption\nimg/a.png,a red square\n"
                                    "img/b.png,a blue square\n")
    for name in ("p.jsonl", "p.csv"):
        pairs = load_pairs(tmp_path / name)
        assert [p.caption for p in pairs] == ["a red square", "a blue square"]
        assert pairs[0].image == (tmp_path / "img" / "a.png").resolve()


@pytest.mark.parametrize("content, message", [
    ('{"image": "missing.png", "caption": "x"}\n', "image not found"),
    ('{"image": "a.png"}\n', "needs an image path"),
    ('{"image": "a.png", "caption": "x"\n', "not valid JSON"),
    ('["a.png", "x"]\n', "JSON object"),
    ("", "no pairs"),
])
def test_load_pairs_errors(tmp_path, content, message):
    solid(tmp_path / "a.png", (1, 2, 3))
    (tmp_path / "p.jsonl").write_text(content)
    with pytest.raises(AssetdbError, match=message):
        load_pairs(tmp_path / "p.jsonl")


def test_split_is_by_image_and_seeded(tmp_path):
    from assetdb.training.pairs import Pair

    pairs = [Pair(tmp_path / f"{i % 10}.png", f"c{i}") for i in range(30)]
    train, val = split_pairs(pairs, 0.2, seed=3)
    assert {p.image for p in train}.isdisjoint({p.image for p in val})
    assert len({p.image for p in val}) == 2 and len(train) + len(val) == 30
    assert split_pairs(pairs, 0.2, seed=3) == (train, val)
    with pytest.raises(AssetdbError):
        split_pairs(pairs, 1.5)


def test_recall_counts_identical_captions_as_hits():
    images = np.eye(3, dtype=np.float32)
    texts = np.array([[0, 1, 0], [0.5, 1, 0], [1, 0, 0.3]], np.float32)
    texts /= np.linalg.norm(texts, axis=1, keepdims=True)
    captions = ["x", "x", "y"]
    r = recall_at_k(images, texts, captions, ks=(1, 2))
    # text 0 -> image 1 (caption x): a hit; text 1 -> image 1: a hit; text 2 (y) -> image 0
    # (x) first, image 2 (y) second.
    assert r["t2i@1"] == pytest.approx(2 / 3) and r["t2i@2"] == 1.0
    # image 0 (x) -> text 2 (y) first, text 1 (x) second; images 1 and 2 hit at once.
    assert r["i2t@1"] == pytest.approx(2 / 3) and r["i2t@2"] == 1.0


def test_contrastive_loss_is_clip_loss_with_unique_captions():
    import torch
    import torch.nn.functional as F

    from assetdb.training.trainer import contrastive_loss

    torch.manual_seed(0)
    img = F.normalize(torch.randn(6, 8), dim=-1)
    txt = F.normalize(torch.randn(6, 8), dim=-1)
    scale = torch.tensor(math.log(10.0))
    logits = 10.0 * img @ txt.T
    labels = torch.arange(6)
    expected = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    got = contrastive_loss(img, txt, scale, torch.arange(6))
    assert torch.allclose(got, expected)
    # Two pairs with one caption: each of them is a right answer for the other.
    groups = torch.tensor([0, 0, 1, 2, 3, 4])
    dup = contrastive_loss(img, txt, scale, groups)
    assert not torch.allclose(dup, expected)
    perfect = F.normalize(torch.eye(6, 8), dim=-1)
    low = contrastive_loss(perfect, perfect, torch.tensor(math.log(100.0)), torch.arange(6))
    assert float(low) < 0.01


@pytest.fixture
def shape_pairs(tmp_path):
    return shapes.write_training_pairs(tmp_path / "data", 48, seed=5)


def test_finetune_trains_saves_and_reports(tiny_model_dir, shape_pairs, tmp_path, monkeypatch):
    monkeypatch.delenv("ASSETDB_DATABASE_URL", raising=False)
    out = tmp_path / "tuned"
    result = run_cli("finetune", "--pairs", str(shape_pairs), "--base", str(tiny_model_dir),
                     "--out", str(out), "--epochs", "4", "--batch-size", "8", "--lr", "1e-3",
                     "--val-fraction", "0.25", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["train_pairs"] == 36 and report["val_pairs"] == 12
    assert report["steps"] == 4 * (36 // 8)
    for key in ("t2i@1", "t2i@5", "t2i@10", "i2t@1", "i2t@5", "i2t@10"):
        assert 0.0 <= report["before"][key] <= 1.0 and 0.0 <= report["after"][key] <= 1.0
    assert report["losses"][-1] < report["losses"][0]  # it learns the training pairs
    # The saved directory loads exactly like a real model, and its weights changed.
    from assetdb.embedding.encoder import load_encoder

    base, tuned = load_encoder(str(tiny_model_dir)), load_encoder(str(out))
    assert tuned.dimension == base.dimension
    texts = ["a red circle", "a blue star"]
    assert not np.allclose(tuned.encode_texts(texts), base.encode_texts(texts))
    assert not np.allclose(*tuned.encode_texts(texts))


def test_finetune_prints_recall_before_and_after(tiny_model_dir, shape_pairs, tmp_path):
    result = run_cli("finetune", "--pairs", str(shape_pairs), "--base", str(tiny_model_dir),
                     "--out", str(tmp_path / "m"), "--epochs", "1", "--batch-size", "8")
    assert result.exit_code == 0, result.output
    assert "before: t->i R@1/5/10" in result.output and "after:  t->i R@1/5/10" in result.output
    assert "i->t R@1/5/10" in result.output


def test_finetune_refuses_a_non_empty_output(tiny_model_dir, shape_pairs, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = run_cli("finetune", "--pairs", str(shape_pairs), "--base", str(tiny_model_dir),
                     "--out", str(out))
    assert result.exit_code == 1 and "not empty" in result.output
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_finetune_bad_pairs_file(tmp_path, tiny_model_dir):
    (tmp_path / "p.txt").write_text("x")
    result = run_cli("finetune", "--pairs", str(tmp_path / "p.txt"), "--base",
                     str(tiny_model_dir), "--out", str(tmp_path / "m"))
    assert result.exit_code == 1 and ".jsonl or .csv" in result.output
    assert not (tmp_path / "m").exists()


def test_eval_needs_exactly_one_source(tmp_path):
    assert "exactly one" in run_cli("eval").output
    assert "exactly one" in run_cli("eval", "--folder", str(tmp_path), "--pairs", "x").output


def test_eval_pairs_and_folder_run_with_any_model(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("ASSETDB_MODEL", str(tiny_model_dir))
    pairs = shapes.write_training_pairs(tmp_path / "p", 12, seed=1)
    result = run_cli("eval", "--pairs", str(pairs), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["pairs"] == 12 and set(data["recall"]) >= {"t2i@1", "i2t@10"}
    assert data["recall"]["t2i@10"] >= data["recall"]["t2i@1"]
    shapes.write_class_folders(tmp_path / "classes", 12, seed=1)
    result = run_cli("eval", "--folder", str(tmp_path / "classes"), "--template", "a {}")
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output and "circle" in result.output
    result = run_cli("eval", "--folder", str(tmp_path / "classes"), "--template", "no slot")
    assert result.exit_code == 1 and "has no {}" in result.output
