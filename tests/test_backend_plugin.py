"""A model backend registered from outside the package, through the `assetdb.backends`
entry-point group (issue 14, item 3), ingests and searches like the built-in one."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
from PIL import Image

from assetdb.embedding import registry
from assetdb.embedding.encoder import (
    PairedEncoder,
    Preprocess,
    SigmoidScoring,
    SoftmaxScoring,
    load_encoder,
)
from assetdb.errors import ModelError
from tests.conftest import run_cli
from tests.plugin_support import install_plugin

PLUGIN = textwrap.dedent('''
    """A colour "model": images embed as their mean colour, texts as the colours named."""
    import numpy as np

    from assetdb.embedding.encoder import IMAGE, TEXT, Preprocess, SoftmaxScoring
    from assetdb.embedding.registry import Backend

    COLOURS = {"red": (1, 0, 0), "green": (0, 1, 0), "blue": (0, 0, 1)}


    class ColourEncoder:
        towers = frozenset({IMAGE, TEXT})
        dimension = 3
        preprocess = Preprocess(image_size=8)
        scoring = SoftmaxScoring(10.0)
        image_size = 8

        def __init__(self, name, batch_size):
            self.name, self.batch_size = name, batch_size

        @staticmethod
        def _unit(rows):
            rows = np.asarray(rows, dtype=np.float32) + 1e-3
            return rows / np.linalg.norm(rows, axis=1, keepdims=True)

        def encode_images(self, images):
            return self._unit([np.asarray(im.convert("RGB"), np.float32).mean((0, 1))
                               for im in images])

        def encode_texts(self, texts):
            return self._unit([np.sum([COLOURS[w] for w in t.split() if w in COLOURS] or
                                      [(1, 1, 1)], axis=0) for t in texts])


    def backend():
        return Backend("colour", lambda model: model.startswith("colour:"),
                       lambda model, device, batch_size: ColourEncoder(model, batch_size))
''')


@pytest.fixture
def colour_plugin(tmp_path, monkeypatch):
    install_plugin(tmp_path / "site", monkeypatch, dist="assetdb-colour-backend",
                   group="assetdb.backends", entry="colour = assetdb_colour_backend:backend",
                   module="assetdb_colour_backend", source=PLUGIN)
    registry.reload_plugins()
    yield
    registry.reload_plugins()


def test_plugin_backend_ingests_and_searches(colour_plugin, database_url, monkeypatch, tmp_path):
    monkeypatch.setenv("ASSETDB_MODEL", "colour:mean-rgb")
    assert registry.backend_for("colour:mean-rgb").name == "colour"
    folder = tmp_path / "pictures"
    folder.mkdir()
    for name, rgb in (("red", (230, 10, 10)), ("green", (10, 200, 20)), ("blue", (5, 5, 240))):
        Image.new("RGB", (30, 20), rgb).save(folder / f"{name}.png")
    assert run_cli("init").exit_code == 0
    result = run_cli("ingest", str(folder), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["ingested"] == 3
    stats = json.loads(run_cli("stats", "--json").stdout)
    assert stats["model"] == "colour:mean-rgb" and stats["dimension"] == 3
    for colour in ("red", "green", "blue"):
        hits = json.loads(run_cli("search", colour, "-k", "1", "--json").stdout)
        hits = hits["results"] if isinstance(hits, dict) else hits
        assert hits[0]["uri"].endswith(f"{colour}.png"), (colour, hits)


def test_builtin_backend_still_loads_directories(tiny_model_dir):
    assert registry.backend_for(str(tiny_model_dir)).name == "sentence-transformers-clip"
    encoder = load_encoder(str(tiny_model_dir))
    assert encoder.towers == {"image", "text"} and encoder.preprocess.image_size == 32


def test_broken_plugin_is_a_clear_error(tmp_path, monkeypatch):
    install_plugin(tmp_path / "site", monkeypatch, dist="broken", group="assetdb.backends",
                   entry="broken = no_such_module_here:backend")
    registry.reload_plugins()
    try:
        with pytest.raises(ModelError, match="plugin 'broken'"):
            registry.backend_for("anything")
    finally:
        registry.reload_plugins()


def test_scoring_rules():
    sims = np.array([[0.30, 0.20, 0.10]])
    clip = SoftmaxScoring(100.0).probabilities(sims)
    assert clip.sum() == pytest.approx(1.0) and clip.argmax() == 0
    siglip = SigmoidScoring(logit_scale=10.0, logit_bias=-2.5).probabilities(sims)
    assert siglip == pytest.approx(1 / (1 + np.exp(-(10 * sims - 2.5))))
    assert siglip.sum() < 1.5  # labels are independent: no normalisation over them


def test_paired_encoder_needs_one_space(encoder, tiny_model_dir_64):
    other = load_encoder(str(tiny_model_dir_64))
    with pytest.raises(ModelError, match="not one space"):
        PairedEncoder(encoder, other)
    paired = PairedEncoder(encoder, encoder)
    assert paired.name == encoder.name and paired.preprocess == encoder.preprocess
    assert paired.encode_texts(["a red circle"]).shape == (1, encoder.dimension)
    assert isinstance(paired.preprocess, Preprocess)
