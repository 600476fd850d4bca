"""The sentence-transformers CLIP backend, loaded from a model directory like a real model."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from assetdb.embedding.encoder import load_encoder
from assetdb.errors import ModelError


def test_vectors_are_normalised_float32_batches(encoder):
    texts = ["a red circle", "a blue square", "a photo of a cat", "a dog"]
    vecs = encoder.encode_texts(texts)
    assert vecs.shape == (4, encoder.dimension) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    # Different texts give different vectors (a broken tokenizer makes them all equal).
    sims = vecs @ vecs.T
    assert (sims[~np.eye(4, dtype=bool)] < 0.999).all()
    imgs = [Image.new("RGB", (50, 40), c) for c in ((255, 0, 0), (0, 0, 255))]
    ivecs = encoder.encode_images(imgs)
    assert ivecs.shape == (2, encoder.dimension) and ivecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(ivecs, axis=1), 1.0, atol=1e-5)
    # batching does not change a vector
    np.testing.assert_allclose(encoder.encode_texts(["a dog"])[0], vecs[3], atol=1e-5)


def test_text_longer_than_77_tokens_is_truncated_not_an_error(encoder):
    long = "red " * 200
    vec = encoder.encode_texts([long])
    assert vec.shape == (1, encoder.dimension)
    np.testing.assert_allclose(vec[0], encoder.encode_texts(["red " * 100])[0], atol=1e-5)


def test_model_name_is_the_absolute_directory(encoder, tiny_model_dir):
    assert encoder.name == str(tiny_model_dir.resolve())
    assert encoder.dimension == 32 and encoder.image_size == 32
    assert encoder.scoring.logit_scale > 1


def test_unknown_model_name_is_a_clear_error():
    with pytest.raises(ModelError) as info:
        load_encoder("no-such-org/no-such-clip-model")
    message = str(info.value)
    assert "no-such-org/no-such-clip-model" in message
    assert "ASSETDB_MODEL" in message and "local directory" in message


def test_directory_without_a_model_is_a_clear_error(tmp_path):
    (tmp_path / "empty-model").mkdir()
    with pytest.raises(ModelError, match="cannot load the model"):
        load_encoder(str(tmp_path / "empty-model"))


def test_cli_reports_missing_model(settings, monkeypatch, tmp_path):
    from tests.conftest import run_cli

    monkeypatch.setenv("ASSETDB_MODEL", str(tmp_path / "nowhere"))
    result = run_cli("init")
    assert result.exit_code == 1
    assert "cannot load the model" in result.output and "Traceback" not in result.output
