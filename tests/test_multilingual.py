"""Issue 19: augmentation in finetune, the second (evaluation) renderer, the word tables,
distilling a multilingual text encoder, and pairing a separate text model with an image
model. Fast: tiny random models; the meaning bars are in tests/test_demo_model.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from assetdb.demo import languages, shapes, shapes_eval
from assetdb.errors import AssetdbError, ModelError
from assetdb.training.augment import AugmentConfig, augment
from tests.conftest import run_cli

# --- augmentation -----------------------------------------------------------------------


def test_augmentation_is_random_per_image_and_reproducible():
    pixels = torch.zeros(6, 3, 48, 48)
    pixels[:, :, 16:32, 20:28] = 1.0  # a bar, so rotations and flips show
    cfg = AugmentConfig(rotate=45, flip="both", noise=0.05, blur=0.5)
    a = augment(pixels, cfg, torch.Generator().manual_seed(3))
    b = augment(pixels, cfg, torch.Generator().manual_seed(3))
    c = augment(pixels, cfg, torch.Generator().manual_seed(4))
    assert a.shape == pixels.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.allclose(a[0], a[1])  # every image draws its own transform
    # The border repeats: a uniform background stays what it was (no black corners).
    flat = augment(torch.full((4, 3, 48, 48), 0.7), AugmentConfig(rotate=45, zoom_out=2.0),
                   torch.Generator().manual_seed(0))
    assert torch.allclose(flat, torch.full_like(flat, 0.7), atol=1e-5)


def test_no_op_settings_leave_pixels_alone_and_colour_jitter_is_off_by_default():
    pixels = torch.rand(3, 3, 32, 32)
    same = AugmentConfig(crop_scale=1, aspect=1, rotate=0, flip="none", translate=0,
                         zoom_out=1)
    assert torch.allclose(augment(pixels, same, torch.Generator().manual_seed(0)), pixels,
                          atol=1e-5)
    assert AugmentConfig().color_jitter == 0
    assert torch.equal(augment(pixels, AugmentConfig(enabled=False), None), pixels)


@pytest.mark.parametrize("kwargs, message", [
    ({"rotate": 200}, "rotation"), ({"flip": "diagonal"}, "flip"),
    ({"crop_scale": 0}, "crop scale"), ({"color_jitter": 1.5}, "colour jitter"),
])
def test_augmentation_settings_are_checked(kwargs, message):
    with pytest.raises(AssetdbError, match=message):
        AugmentConfig(**kwargs)


def test_finetune_cli_takes_augmentation_options(tiny_model_dir, tmp_path):
    pairs = shapes.write_training_pairs(tmp_path / "data", 40, seed=2)
    result = run_cli("finetune", "--pairs", str(pairs), "--base", str(tiny_model_dir),
                     "--out", str(tmp_path / "out"), "--epochs", "1", "--batch-size", "8",
                     "--lr", "1e-3", "--rotate", "10", "--flip", "none", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["augment"]["enabled"] and report["augment"]["rotate"] == 10
    assert report["augment"]["flip"] == "none" and report["augment"]["color_jitter"] == 0
    bad = run_cli("finetune", "--pairs", str(pairs), "--base", str(tiny_model_dir),
                  "--out", str(tmp_path / "out2"), "--rotate", "500")
    assert bad.exit_code != 0 and "rotation must lie in 0..180" in bad.output
    assert not (tmp_path / "out2").exists()


# --- the second renderer ----------------------------------------------------------------


def test_second_renderer_is_separate_and_draws_what_the_trainer_never_did(tmp_path):
    source = Path(shapes_eval.__file__).read_text()
    # Only the names come from the training generator, never its drawing code.
    assert "from assetdb.demo.shapes import COLORS, SHAPES\n" in source
    assert "shapes.render" not in source and "_polygon" not in source
    for module in ("trainer", "augment", "distill"):
        text = (Path(shapes.__file__).parents[1] / "training" / f"{module}.py").read_text()
        assert "shapes_eval" not in text
    items = list(shapes_eval.generate(tmp_path, 96, seed=1))
    drawn = [it for _, it in items]
    assert {it.shape for it in drawn} == set(shapes.SHAPES)
    assert any(it.outline for it in drawn) and any(not it.outline for it in drawn)
    assert {it.texture for it in drawn} == set(shapes_eval.TEXTURES)
    assert any(it.width != it.height for it in drawn)
    assert max(abs(it.angle) for it in drawn) > 30
    assert all(abs(it.angle) <= 30 for it in drawn if it.shape in ("square", "diamond"))
    path, item = items[0]
    assert path.suffix == ".jpg"
    from PIL import Image

    assert Image.open(path).size == (item.width, item.height)


# --- word tables --------------------------------------------------------------------------


def test_word_tables_are_grammatical_in_every_language():
    cap = languages.caption
    assert cap("fr", "color_shape", "star", "red") == "une étoile rouge"
    assert cap("fr", "size_color_shape_bg", "square", "green", "small", "white") == \
        "un petit carré vert sur fond blanc"
    assert cap("de", "color_shape", "diamond", "red") == "eine rote Raute"
    assert cap("de", "photo_color_shape", "square", "blue") == "ein Foto von einem blauen Quadrat."
    assert cap("es", "color_shape", "star", "black") == "una estrella negra"
    assert cap("it", "color_shape", "circle", "yellow") == "un cerchio giallo"
    assert cap("pt", "color_shape", "cross", "white") == "uma cruz branca"
    assert cap("ru", "color_shape", "star", "yellow") == "жёлтая звезда"
    assert cap("ru", "color_shape_bg", "circle", "red", background="blue") == \
        "красный круг на синем фоне"
    assert cap("zh", "color_shape", "circle", "red") == "一个红色的圆形"
    assert set(languages.LANGUAGES) >= {"en", "fr", "de", "es", "it", "pt", "ru", "zh"}
    with pytest.raises(KeyError, match="no word table"):
        cap("xx", "shape", "star")


def test_translation_pairs_leave_out_the_held_out_combinations(tmp_path):
    path = languages.write_translation_pairs(tmp_path / "t.jsonl", ["fr", "ru"])
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert {r["language"] for r in rows} == {"fr", "ru"}
    for color, shape in languages.HELD_OUT_COMBOS:
        assert not any(f"{color} {shape}" in r["english"] for r in rows)
        assert not any(languages.color_query("fr", color, shape) in r["translation"]
                       for r in rows)
    assert any(r["english"] == "a red square" for r in rows)


# --- distillation -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_pairs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("translations")
    rows = [r for r in languages.translation_rows(["fr", "ru", "zh"])
            if r["english"].count(" ") <= 2]  # "a red circle", "a circle"
    path = folder / "pairs.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def test_distill_text_trains_a_student_with_its_own_tokenizer(tiny_model_dir, small_pairs,
                                                               tmp_path):
    out = tmp_path / "text"
    result = run_cli("finetune", "--distill-text", "--pairs", str(small_pairs), "--base",
                     str(tiny_model_dir), "--out", str(out), "--epochs", "3",
                     "--batch-size", "32", "--vocab-size", "300", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["languages"] == ["en", "fr", "ru", "zh"]
    assert set(report["after"]) == {"en", "fr", "ru", "zh"}
    assert report["losses"][-1] < report["losses"][0]
    manifest = json.loads((out / "assetdb_text_model.json").read_text(encoding="utf-8"))
    assert manifest["dimension"] == 32 and manifest["languages"] == report["languages"]
    assert not (out / "checkpoint").exists()
    from assetdb.embedding.backends.clip_text import load_tokenizer
    from assetdb.embedding.encoder import load_encoder

    tokens = load_tokenizer(out).encode("красный 圆形").tokens
    assert "[UNK]" not in tokens and "圆" in tokens and "形" in tokens  # CJK: one a character
    paired = load_encoder(str(tiny_model_dir), text_model=str(out))
    assert paired.text_name == str(out.resolve())
    vectors = paired.encode_texts(["un cercle rouge", "красный круг", "一个红色的圆形"])
    assert vectors.shape == (3, 32)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)


def test_distillation_resumes_after_an_interruption(tiny_model_dir, small_pairs, tmp_path):
    from assetdb.training.distill import DistillConfig, distill_text, load_translation_pairs

    pairs = load_translation_pairs(small_pairs)
    cfg = DistillConfig(epochs=3, batch_size=64, vocab_size=300)
    out = tmp_path / "text"
    totals = []

    def stop_in_epoch_two(step: int, total: int, loss: float) -> None:
        totals.append(total)
        if step > total // 3 + 1:  # two steps into the second epoch
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        distill_text(str(tiny_model_dir), pairs, out, cfg, on_step=stop_in_epoch_two)
    assert (out / "checkpoint" / "state.pt").is_file()
    with pytest.raises(AssetdbError, match="not empty"):  # no silent overwrite
        distill_text(str(tiny_model_dir), pairs, out, cfg)
    steps = []
    report = distill_text(str(tiny_model_dir), pairs, out, cfg, resume=True,
                          on_step=lambda s, t, loss: steps.append(s))
    per_epoch = totals[0] // 3
    assert report.resumed_from_epoch == 1
    assert steps == list(range(per_epoch + 1, 3 * per_epoch + 1))  # epochs 2 and 3 only
    assert report.epochs == 3 and len(report.losses) == 3
    assert (out / "assetdb_text_model.json").is_file()
    with pytest.raises(AssetdbError, match="nothing to resume"):
        distill_text(str(tiny_model_dir), pairs, tmp_path / "empty", cfg, resume=True)


def test_bad_distillation_inputs_are_clear_errors(tiny_model_dir, small_pairs, tmp_path):
    out = tmp_path / "never"
    unknown = run_cli("finetune", "--distill-text", "--pairs", str(small_pairs), "--base",
                      str(tiny_model_dir), "--out", str(out), "--language", "fr,xx")
    assert unknown.exit_code != 0
    assert "unknown language 'xx'" in unknown.output and "en" not in unknown.output.split(
        "has pairs for")[-1].split(",")[0]
    bad_code = run_cli("finetune", "--distill-text", "--pairs", str(small_pairs), "--base",
                       str(tiny_model_dir), "--out", str(out), "--language", "French!")
    assert bad_code.exit_code != 0 and "ISO 639" in bad_code.output
    missing = tmp_path / "missing.csv"
    missing.write_text("english,translation\na red circle,un cercle rouge\n", encoding="utf-8")
    result = run_cli("finetune", "--distill-text", "--pairs", str(missing), "--base",
                     str(tiny_model_dir), "--out", str(out))
    assert result.exit_code != 0
    assert "missing.csv:2: missing language" in result.output
    assert not out.exists()  # nothing written, no model loaded for a bad file


# --- pairing a text model with an image model ---------------------------------------------


@pytest.fixture(scope="module")
def student_32(tiny_model_dir, small_pairs, tmp_path_factory):
    from assetdb.training.distill import DistillConfig, distill_text, load_translation_pairs

    out = tmp_path_factory.mktemp("students") / "text-32"
    distill_text(str(tiny_model_dir), load_translation_pairs(small_pairs), out,
                 DistillConfig(epochs=1, batch_size=64, vocab_size=300))
    return out


def test_a_text_model_of_another_dimension_is_refused_before_loading(
        student_32, tiny_model_dir_64, tmp_path, monkeypatch):
    from assetdb.embedding.encoder import load_encoder

    # A copy of the 64-d model without its weights: refusing from the manifests alone
    # never gets as far as the missing weights.
    hollow = tmp_path / "hollow-64"
    shutil.copytree(tiny_model_dir_64, hollow)
    (hollow / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="makes 32-d vectors, the image model .* 64-d"):
        load_encoder(str(hollow), text_model=str(student_32))
    monkeypatch.setenv("ASSETDB_TEXT_MODEL", str(student_32))
    with pytest.raises(ModelError, match="not one space"):
        load_encoder(str(hollow))
    monkeypatch.setenv("ASSETDB_TEXT_MODEL", "builtin")  # the model's own tower
    assert load_encoder(str(tiny_model_dir_64)).dimension == 64


def test_a_text_model_distilled_for_another_image_model_is_refused(student_32, tmp_path):
    from assetdb.embedding.encoder import load_encoder
    from assetdb.embedding.tiny import build_tiny_clip

    other = build_tiny_clip(tmp_path / "other-32", seed=7)  # 32-d too, other weights
    with pytest.raises(ModelError, match="was distilled for the image model"):
        load_encoder(str(other), text_model=str(student_32))


def test_model_directory_names_its_text_model_and_init_records_it(
        database_url, tiny_model_dir, student_32, tmp_path, monkeypatch):
    from assetdb.embedding.encoder import load_encoder
    from assetdb.embedding.text_model import write_reference

    model = tmp_path / "paired"
    shutil.copytree(tiny_model_dir, model)
    shutil.copytree(student_32, model / "text")
    # The student's manifest names its teacher's weights: the copy has the same ones.
    write_reference(model, model / "text")
    monkeypatch.setenv("ASSETDB_MODEL", str(model))
    encoder = load_encoder(str(model))
    assert encoder.text_name == str((model / "text").resolve())
    result = run_cli("init", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["text_models"] == [str((model / "text").resolve())]
    # Queries in another language go through the student, through the real database.
    images = tmp_path / "pictures"
    list(shapes.generate(images, 12, seed=3))
    assert run_cli("ingest", str(images), "--json").exit_code == 0
    hits = run_cli("search", "красный круг", "-k", "3", "--json")
    assert hits.exit_code == 0, hits.output
    assert len(json.loads(hits.stdout)) == 3
    # A text model of another dimension for this catalogue: a clear error at once.
    monkeypatch.setenv("ASSETDB_TEXT_MODEL", str(tmp_path / "nowhere"))
    bad = run_cli("search", "a red circle")
    assert bad.exit_code != 0 and "not a text model" in bad.output


def test_eval_reports_each_language_apart(tiny_model_dir, student_32, tmp_path,
                                          monkeypatch):
    monkeypatch.delenv("ASSETDB_DATABASE_URL", raising=False)
    monkeypatch.setenv("ASSETDB_MODEL", str(tiny_model_dir))
    rows = []
    for path, item in shapes.generate(tmp_path / "imgs", 12, seed=8):
        for lang in ("en", "fr", "ru"):
            rows.append({"image": f"imgs/{path.name}", "language": lang,
                         "caption": languages.color_query(lang, item.color, item.shape)})
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                     encoding="utf-8")
    result = run_cli("eval", "--pairs", str(pairs), "--text-model", str(student_32), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["text_model"] == str(student_32.resolve())
    assert sorted(data["per_language"]) == ["en", "fr", "ru"]
    for figures in data["per_language"].values():
        assert figures["pairs"] == 12 and 0 <= figures["recall"]["t2i@5"] <= 1
    table = run_cli("eval", "--pairs", str(pairs), "--text-model", str(student_32))
    assert table.exit_code == 0 and "t->i R@5" in table.output and "ru" in table.output
