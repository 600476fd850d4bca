"""Issue 19: the domain-randomisation augmentations (outline, background texture, shade)
that change what a geometric transform cannot. Off by default; label-agnostic (the
foreground is whatever differs from the image's border colour)."""

from __future__ import annotations

import json

import pytest
import torch

from assetdb.demo import shapes
from assetdb.errors import AssetdbError
from assetdb.training.augment import AugmentConfig, augment, foreground
from tests.conftest import run_cli

MEAN, STD = [0.48, 0.46, 0.41], [0.27, 0.26, 0.28]
STILL = {"crop_scale": 1, "aspect": 1, "rotate": 0, "flip": "none", "translate": 0,
         "zoom_out": 1}  # no geometric change, so pixels can be compared in place
RED, BLUE = (0.85, 0.15, 0.15), (0.15, 0.25, 0.85)


def square_on_ground(n: int = 4) -> torch.Tensor:
    """RGB 0..1: a red 20 px square in the middle of a blue 48 px image."""
    rgb = torch.tensor(BLUE).view(1, 3, 1, 1).repeat(n, 1, 48, 48)
    rgb[:, :, 14:34, 14:34] = torch.tensor(RED).view(1, 3, 1, 1)
    return rgb


def run(rgb: torch.Tensor, seed: int = 0, **kwargs: object) -> torch.Tensor:
    m, s = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    out = augment((rgb - m) / s, AugmentConfig(**{**STILL, **kwargs}),
                  torch.Generator().manual_seed(seed), MEAN, STD)
    return out * s + m


def test_off_by_default_and_foreground_is_what_differs_from_the_border():
    d = AugmentConfig()
    assert d.outline == 0 and d.texture == 0 and d.shade == 0 and d.color_jitter == 0
    rgb = square_on_ground(1)
    assert torch.allclose(run(rgb), rgb, atol=1e-5)
    bg, alpha = foreground(rgb)
    assert torch.allclose(bg.flatten(), torch.tensor(BLUE))
    assert alpha[0, 0, 24, 24] == 1 and alpha[0, 0, 2, 2] == 0


def test_outline_keeps_the_boundary_in_the_foreground_colour():
    out = run(square_on_ground(), outline=1.0)
    red, blue = torch.tensor(RED), torch.tensor(BLUE)
    for img in out:
        assert torch.allclose(img[:, 24, 24], blue, atol=1e-4)  # the inside is ground now
        assert torch.allclose(img[:, 24, 14], red, atol=1e-4)  # the edge stays
        assert torch.allclose(img[:, 24, 4], blue, atol=1e-4)  # far outside: untouched
        # stroke widths are drawn per image: 1-3 px inward, 0-1 px outward
        row = (img[:, 24, :] - blue.view(3, 1)).abs().amax(dim=0) > 0.3
        assert 1 <= int(row[:24].sum()) <= 4


def test_texture_changes_only_the_background_and_keeps_its_hue():
    rgb = square_on_ground(8)
    out = run(rgb, seed=1, texture=1.0)
    inside = out[:, :, 18:30, 18:30]
    assert torch.allclose(inside, rgb[:, :, 18:30, 18:30], atol=1e-4)
    ground = out[:, :, :10, :]
    assert (ground.std(dim=(2, 3)) > 0.01).all()  # a pattern, in every image
    # Lighter or darker blue, never another hue: blue stays the largest channel.
    assert (ground.argmax(dim=1) == 2).all()
    assert not torch.allclose(out[0], out[1])  # each image its own texture


def test_shade_moves_foreground_and_background_apart_keeping_hue():
    rgb = square_on_ground(16)
    out = run(rgb, seed=2, shade=0.3)
    fg, bg = out[:, :, 24, 24], out[:, :, 2, 2]
    assert (fg.argmax(dim=1) == 0).all() and (bg.argmax(dim=1) == 2).all()
    fg_change = (fg - torch.tensor(RED)).mean(dim=1)
    bg_change = (bg - torch.tensor(BLUE)).mean(dim=1)
    assert fg_change.abs().max() > 0.05 and bg_change.abs().max() > 0.05
    assert not torch.allclose(fg_change, bg_change, atol=1e-3)  # drawn apart
    assert (fg_change > 0).any() and (fg_change < 0).any()  # lighter and darker


@pytest.mark.parametrize("kwargs, message", [
    ({"outline": 1.5}, "outline"), ({"texture": -0.1}, "texture"), ({"shade": 1.0}, "shade"),
])
def test_settings_are_checked(kwargs, message):
    with pytest.raises(AssetdbError, match=message):
        AugmentConfig(**kwargs)


def test_restyling_needs_the_normalisation():
    with pytest.raises(AssetdbError, match="normalisation"):
        augment(torch.zeros(1, 3, 8, 8), AugmentConfig(outline=0.5),
                torch.Generator().manual_seed(0))


def test_finetune_cli_takes_the_domain_options(tiny_model_dir, tmp_path):
    pairs = shapes.write_training_pairs(tmp_path / "data", 24, seed=3)
    result = run_cli("finetune", "--pairs", str(pairs), "--base", str(tiny_model_dir),
                     "--out", str(tmp_path / "out"), "--epochs", "1", "--batch-size", "8",
                     "--lr", "1e-3", "--outline", "0.3", "--texture", "0.5",
                     "--shade", "0.2", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)["augment"]
    assert (report["outline"], report["texture"], report["shade"]) == (0.3, 0.5, 0.2)
    bad = run_cli("finetune", "--pairs", str(pairs), "--base", str(tiny_model_dir),
                  "--out", str(tmp_path / "out2"), "--texture", "2")
    assert bad.exit_code != 0 and "texture must lie in 0..1" in bad.output
    assert not (tmp_path / "out2").exists()


def test_dihedral_flips_turn_images_by_90_degrees():
    bar = torch.zeros(1, 3, 8, 8)
    bar[:, :, 1, 1:6] = 1.0  # a horizontal bar near the top: all 8 symmetries differ
    cfg = AugmentConfig(**{**STILL, "flip": "dihedral"})
    gen = torch.Generator().manual_seed(0)
    seen = {tuple(augment(bar, cfg, gen)[0, 0].round().nonzero().flatten().tolist())
            for _ in range(80)}
    assert len(seen) == 8
    turned = torch.rot90(bar, 1, dims=(2, 3))[0, 0].nonzero().flatten().tolist()
    assert tuple(turned) in seen  # a quarter turn is one of them
    both = AugmentConfig(**{**STILL, "flip": "both"})
    assert len({tuple(augment(bar, both, gen)[0, 0].round().nonzero().flatten().tolist())
                for _ in range(80)}) == 4  # mirrors alone never turn a bar upright
