"""Issue 19: domain randomisation drawn by the demo's training generator (shapes.Variety).
The drawings must really vary (tall and wide diamonds, outlines, patterned backgrounds)
while every label stays true; without a variety the generator draws what it always drew."""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from assetdb.demo import build_model, shapes
from assetdb.training.augment import AugmentConfig


def varied(n: int, seed: int = 0, **kwargs) -> list[shapes.ShapeImage]:
    rng = random.Random(seed)
    variety = shapes.Variety(share=1.0, **kwargs)
    return [shapes.vary(shapes.sample(rng, shape=shapes.SHAPES[i % 6]), rng, variety)
            for i in range(n)]


def mask(item: shapes.ShapeImage) -> np.ndarray:
    """Pixels of the shape's colour (plain background, filled, no JPEG)."""
    flat = replace(item, texture="plain", stroke=0.0, jpeg=0, shade=0.0, background_shade=0.0)
    rgb = np.asarray(shapes.render(flat, random.Random(1)), dtype=float)
    return np.abs(rgb - shapes.COLORS[item.color]).max(axis=2) < 40


def test_diamonds_are_drawn_tall_and_wide_and_squares_stay_squares():
    items = varied(600)
    diamonds = [it for it in items if it.shape == "diamond"]
    tall = wide = 0
    for it in diamonds[:40]:
        ys, xs = np.nonzero(mask(replace(it, angle=0.0)))
        h, w = np.ptp(ys) + 1, np.ptp(xs) + 1
        assert (h > w) == (it.stretch < 1), (it, h, w)
        tall, wide = tall + (h > 1.2 * w), wide + (w > 1.2 * h)
    assert tall >= 5 and wide >= 5
    # Truthful names: a square turned 45 degrees would be a diamond, a diamond close to a
    # square on its corner would be a turned square if it turned far.
    for it in diamonds:
        aspect = max(it.stretch, 1 / it.stretch)
        assert aspect <= shapes.DIAMOND_ASPECT[1] + 1e-3
        assert aspect >= shapes.DIAMOND_ASPECT[0] - 1e-3 or abs(it.angle) <= 8
    squares = [it for it in items if it.shape == "square"]
    assert max(abs(it.angle) for it in squares) > 20
    assert all(abs(it.angle) <= shapes.SQUARE_TURN for it in squares)
    assert all(abs(math.log(it.stretch)) <= 0.16 for it in squares)
    # Triangles turn further than the plain generator's 20 degrees, within their symmetry.
    assert max(abs(it.angle) for it in items if it.shape == "triangle") > 40


def test_outlines_patterns_shades_and_jpeg_are_drawn(tmp_path):
    items = varied(240, seed=3, textures=shapes.TEXTURES[1:])
    assert {it.texture for it in items} == set(shapes.TEXTURES)
    # Unless told otherwise a variety draws the smooth families only.
    assert {it.texture for it in varied(120, seed=3)} == {"plain", *shapes.SMOOTH_TEXTURES}
    assert any(it.stroke for it in items) and any(not it.stroke for it in items)
    assert any(it.jpeg for it in items) and any(it.shade > 0.1 for it in items)
    rng = random.Random(2)
    large = [it for it in items if it.size == "large" and it.shape in ("circle", "square")]
    for it in large[:6]:
        plain = replace(it, texture="plain", jpeg=0)
        centre = (round(it.y), round(it.x))
        filled = np.asarray(shapes.render(replace(plain, stroke=0.0), rng), dtype=float)
        ring = np.asarray(shapes.render(replace(plain, stroke=0.15), rng), dtype=float)
        background = np.asarray(shapes.render(plain, rng), dtype=float)[0, 0]
        # Filled: the centre is the shape's colour; outlined: the background's.
        assert np.abs(filled[centre] - background).max() > 40
        assert np.abs(ring[centre] - background).max() < 40
    flat = np.asarray(shapes.render(replace(items[0], texture="plain", jpeg=0), rng), float)
    ground = (np.abs(flat - flat[0, 0]).max(axis=2) < 1)  # background, away from the shape
    assert ground.mean() > 0.5
    for texture in shapes.TEXTURES:
        it = replace(items[0], texture=texture, jpeg=0)
        pixels = np.asarray(shapes.render(it, rng), dtype=float)[ground]
        assert (pixels.std(axis=0).max() > 2) == (texture != "plain"), texture


def test_without_variety_the_generator_draws_as_before(tmp_path):
    # The held-out sets every English figure is measured on (assetdb/demo/measure.py, seed
    # 99) come from the generator without variety: its random stream must not move. These
    # are the 46th-48th images the generator drew before Variety existed.
    plain = [it for _, it in shapes.generate(tmp_path / "a", 48, seed=99, balanced=True)]
    assert plain[45:] == [
        shapes.ShapeImage("diamond", "orange", "small", "green", 30.6, 19.6, 9.8, 9.7),
        shapes.ShapeImage("diamond", "white", "large", "yellow", 41.1, 36.6, 16.5, -3.0),
        shapes.ShapeImage("diamond", "black", "small", "blue", 24.5, 34.3, 9.7, -8.8)]
    assert not any(it.varied for it in plain)
    mixed = [it for _, it in shapes.generate(tmp_path / "c", 60, seed=5,
                                             variety=shapes.Variety(share=0.5))]
    assert 15 <= sum(it.varied for it in mixed) <= 45
    # Captions and tags say what is drawn, varied or not.
    assert all(it.caption().split()[3] == it.shape for it in mixed)


def test_variety_settings_are_checked_and_the_varied_recipe_is_complete():
    with pytest.raises(ValueError, match="share"):
        shapes.Variety(share=1.5)
    with pytest.raises(ValueError, match="stretch"):
        shapes.Variety(stretch=0.9)
    with pytest.raises(ValueError, match="not stripes"):
        shapes.Variety(textures=("grating", "stripes"))
    for stage in build_model.VARIED_STAGES:
        if "variety" in stage:
            shapes.Variety(**build_model.RECIPE["variety"][stage["variety"]])
        if "augment" in stage:
            assert AugmentConfig(**build_model.RECIPE["augment"][stage["augment"]]).rotate == 0


@pytest.mark.parametrize(("args", "message"), [
    (["--plain", "--augmented"], "not allowed with"),
    (["--recipe", "{missing}"], "No such file"),
    (["--recipe", "{bad_json}"], "--recipe"),
    (["--recipe", "{unknown_variety}"], "stage 1: variety 'nope' is not one of"),
    (["--recipe", "{unknown_forms}"], "stage 1: forms 'every' is not one of"),
    (["--recipe", "{bad_variety}"], "variety 'half': variety share must lie in 0..1"),
])
def test_build_model_refuses_bad_recipes_before_any_work(tmp_path, capsys, args, message):
    files = {"missing": tmp_path / "missing.json", "bad_json": tmp_path / "bad.json",
             "unknown_variety": tmp_path / "v.json", "unknown_forms": tmp_path / "f.json",
             "bad_variety": tmp_path / "s.json"}
    files["bad_json"].write_text("{stages")
    stage = {"images": "mono", "forms": "shape-only", "epochs": 1, "lr": 1e-3}
    files["unknown_variety"].write_text(json.dumps({"stages": [{**stage, "variety": "nope"}]}))
    files["unknown_forms"].write_text(json.dumps({"stages": [{**stage, "forms": "every"}]}))
    files["bad_variety"].write_text(json.dumps({"variety": {"half": {"share": 2}}}))
    out = tmp_path / "model"
    with pytest.raises(SystemExit) as exc:
        build_model.main(["--out", str(out), *[a.format(**files) for a in args]])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()  # nothing generated, nothing trained


def test_build_draws_each_stage_set_as_the_generator_does(tmp_path):
    # build_model draws the stages' image sets in parallel processes; each set must be
    # exactly what the generator draws for its (kind, count, seed, variety).
    key = ("colour", 12, 5, "half")
    drawn = build_model._generate((tmp_path / "a", key, build_model.RECIPE["variety"]))
    direct = list(shapes.generate(tmp_path / "b", 12, seed=5,
                                  variety=shapes.Variety(share=0.5)))
    assert [it for _, it in drawn] == [it for _, it in direct]
    assert any(it.varied for _, it in drawn)
    assert all(p.read_bytes() == q.read_bytes()
               for (p, _), (q, _) in zip(drawn, direct, strict=True))


def test_a_tiny_clip_can_start_at_another_temperature(tmp_path):
    from safetensors.torch import load_file

    from assetdb.embedding.tiny import build_tiny_clip

    default = build_tiny_clip(tmp_path / "a", words=["star"], layers=1)
    warmer = build_tiny_clip(tmp_path / "b", words=["star"], layers=1, logit_scale=3.912)
    scale = {d: float(load_file(str(d / "model.safetensors"))["logit_scale"])
             for d in (default, warmer)}
    assert abs(scale[default] - 2.6592) < 1e-3  # CLIP's 1/0.07
    assert abs(scale[warmer] - 3.912) < 1e-4  # ln 50: 1/50


def test_every_recorded_recipe_is_valid():
    # The recipes of every build and shape-stage run in docs/finetune.md, as
    # `build_model --recipe` and benchmarks/shape_stages.py read them.
    root = Path(__file__).resolve().parents[1] / "benchmarks" / "demo_recipes"
    files = sorted(root.rglob("*.json"))
    assert len(files) >= 10
    for path in files:
        spec = json.loads(path.read_text(encoding="utf-8"))
        recipe = build_model.with_recipe(build_model.RECIPE, spec)
        assert build_model.recipe_problem(recipe) is None, path
        assert "model" in spec, path  # a change of the shipped model leaves it as built
