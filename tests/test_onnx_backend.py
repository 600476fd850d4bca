"""The ONNX backend (`assetdb model export`, ASSETDB_MODEL=an export): its vectors are
torch's (cosine >= 0.9999 fp32), its pixels are CLIPImageProcessor's, it never imports
torch, and the recorded model identity keeps int8 vectors apart unless chosen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from assetdb.embedding.backends.onnx_clip import MANIFEST_NAME, OnnxClip, choose_providers
from assetdb.embedding.clip_pixels import ClipPixels
from assetdb.embedding.encoder import canonical_model_name, load_encoder
from assetdb.errors import AssetdbError, ModelError
from tests.conftest import run_cli
from tests.images import noise, solid

TEXTS = ["a photo of a red circle", "", "dog", "a green square on a blue car " * 20,
         "ÿ unicode ✓ text"]


def _photo(size: tuple[int, int], seed: int, mode: str = "RGB") -> Image.Image:
    """Photo-like: smooth colour fields plus noise, at a size that needs resize and crop."""
    rng = np.random.default_rng(seed)
    low = Image.fromarray(rng.integers(0, 256, (5, 6, 3), dtype=np.uint8))
    arr = np.asarray(low.resize(size, Image.Resampling.BICUBIC), np.int16)
    arr = np.clip(arr + rng.integers(-15, 16, arr.shape), 0, 255).astype(np.uint8)
    image = Image.fromarray(arr)
    if mode == "RGBA":
        alpha = Image.fromarray(rng.integers(0, 256, (size[1], size[0]), dtype=np.uint8))
        image.putalpha(alpha)
    return image.convert(mode) if mode not in ("RGB", "RGBA") else image


def real_images(folder: Path) -> list[Image.Image]:
    """Decoded from files as the product decodes them, of many shapes and modes."""
    from assetdb.embedding.images import load_image

    images = [_photo((640, 480), 1), _photo((300, 700), 2), _photo((33, 20), 3),
              _photo((200, 200), 4, "RGBA"), _photo((120, 90), 5, "L"),
              _photo((97, 61), 6, "P")]
    paths = []
    for i, image in enumerate(images):
        paths.append(folder / f"p{i}.png")
        image.save(paths[-1])
    paths.append(noise(folder / "noise.png", seed=7, size=(50, 80)))
    paths.append(solid(folder / "red.jpg", (220, 20, 20), size=(64, 48)))
    return [load_image(p) for p in paths]


@pytest.fixture(scope="session")
def onnx_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "tiny-onnx"
    result = run_cli("model", "export", str(tiny_model_dir), "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["precision"] == "fp32" and report["image_min_cosine"] >= 0.9999
    return out


@pytest.fixture(scope="session")
def int8_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "tiny-int8"
    result = run_cli("model", "export", str(tiny_model_dir), "--out", str(out), "--int8")
    assert result.exit_code == 0, result.output
    return out


def test_pixels_equal_the_clip_image_processor(encoder, tmp_path):
    processor = encoder.processor.image_processor
    pixels = ClipPixels.from_config(processor.to_dict())
    for image in real_images(tmp_path):
        ours = pixels.pixels(image)
        theirs = processor(images=image, return_tensors="np")["pixel_values"][0]
        assert ours.shape == theirs.shape
        assert np.abs(ours - theirs).max() < 1e-5


def test_export_equals_torch_on_real_inputs(onnx_dir, tiny_model_dir, encoder, tmp_path):
    manifest = json.loads((onnx_dir / MANIFEST_NAME).read_text())
    assert manifest["backend"] == "onnx-clip" and manifest["precision"] == "fp32"
    onnx = load_encoder(str(onnx_dir))  # the registry picks the backend from the manifest
    assert isinstance(onnx, OnnxClip)
    # fp32: the source model's identity, so the two are interchangeable in a catalogue.
    assert onnx.name == encoder.name == canonical_model_name(str(tiny_model_dir))
    assert onnx.dimension == encoder.dimension and onnx.image_size == encoder.image_size
    assert onnx.preprocess == encoder.preprocess
    assert onnx.scoring.logit_scale == pytest.approx(encoder.scoring.logit_scale, rel=1e-6)
    images = real_images(tmp_path)
    for batch in (1, 3):  # padding and batching do not change a vector
        onnx.batch_size = encoder.batch_size = batch
        try:
            a, b = onnx.encode_images(images), encoder.encode_images(images)
            assert np.min(np.sum(a * b, axis=1)) >= 0.9999
            a, b = onnx.encode_texts(TEXTS), encoder.encode_texts(TEXTS)
            assert np.min(np.sum(a * b, axis=1)) >= 0.9999
        finally:
            onnx.batch_size = encoder.batch_size = 32
    assert np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    assert onnx.encode_images([]).shape == (0, onnx.dimension)
    # Texts still differ from each other (a broken tokenizer embeds every text alike).
    assert float(a[0] @ a[2]) < 0.999


PROBE = """
import json, sys
from click.testing import CliRunner
from assetdb.cli.main import cli
out = {}
for args in (["search", "a red circle", "-k", "10", "--json"], ["similar", "1", "--json"]):
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out[args[0]] = [h["id"] for h in json.loads(result.stdout)]
out["heavy"] = sorted(m for m in ("torch", "sentence_transformers", "transformers")
                      if m in sys.modules)
print(json.dumps(out))
"""


def test_catalogue_embedded_with_torch_is_searched_with_onnx_without_torch(
        initialised, onnx_dir, encoder, tmp_path, monkeypatch):
    from assetdb.catalog.catalogue import Catalog

    for i in range(12):
        noise(tmp_path / "imgs" / f"n{i}.png", seed=i)
    for name, rgb in (("red", (220, 20, 20)), ("green", (20, 200, 40))):
        solid(tmp_path / "imgs" / f"{name}.png", rgb)
    report = Catalog(initialised).ingest([str(tmp_path / "imgs")], encoder=encoder)
    assert report.ingested == 14
    torch_hits = [h.id for h in Catalog(initialised).search_text(encoder, "a red circle", k=10)]
    env = {**os.environ, "ASSETDB_MODEL": str(onnx_dir)}
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["heavy"] == []  # neither torch nor transformers in the process
    assert out["search"] == torch_hits  # same top-10 through the other backend
    assert len(out["similar"]) == 10 and 1 not in out["similar"]
    # The page and API load the same backend from ASSETDB_MODEL.
    from fastapi.testclient import TestClient

    from assetdb.api.app import create_app

    monkeypatch.setenv("ASSETDB_MODEL", str(onnx_dir))
    with TestClient(create_app(), base_url="http://127.0.0.1:8000") as client:
        assert isinstance(client.app.state.encoder, OnnxClip)
        hits = client.get("/api/search", params={"q": "a red circle", "limit": 10}).json()
    assert [h["id"] for h in hits["results"]] == torch_hits


def test_int8_is_its_own_model_unless_chosen(int8_dir, tiny_model_dir, encoder, initialised,
                                             tmp_path, monkeypatch):
    int8 = load_encoder(str(int8_dir))
    assert int8.precision == "int8-dynamic"
    assert int8.name == encoder.name + "#onnx-int8"
    assert (int8_dir / "image.onnx").stat().st_size < 0.6 * (
        tiny_model_dir / "model.safetensors").stat().st_size
    images = real_images(tmp_path)
    cos = np.sum(int8.encode_images(images) * encoder.encode_images(images), axis=1)
    assert cos.min() >= 0.99
    # The catalogue records the fp32 model: int8 vectors are refused, with advice.
    assert run_cli("search", "a dog").exit_code == 0  # the database's own model answers
    monkeypatch.setenv("ASSETDB_MODEL", str(int8_dir))
    result = run_cli("search", "a dog")
    assert result.exit_code != 0 and "differs from the database's model" in result.output


def test_int8_same_identity_and_static_calibration(tiny_model_dir, encoder, tmp_path):
    (tmp_path / "calib").mkdir()
    for i in range(8):  # the user's own photos: like the ones it will embed
        _photo((90, 70), 100 + i).save(tmp_path / "calib" / f"c{i}.png")
    out = tmp_path / "static"
    result = run_cli("model", "export", str(tiny_model_dir), "--out", str(out), "--int8",
                     "--same-identity", "--calibrate-images", str(tmp_path / "calib"), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["precision"] == "int8-static" and report["identity"] == encoder.name
    static = OnnxClip(str(out))
    assert static.name == encoder.name
    assert static.manifest["calibration_images"] == 8
    # Photos like the calibration set (activations outside its range are clipped).
    images = [_photo((160, 120), 200 + i) for i in range(4)]
    want, ours = encoder.encode_images(images), static.encode_images(images)
    assert np.sum(ours * want, axis=1).min() >= 0.99
    try:
        import openvino  # noqa: F401  (in the dev extra; optional for users)
    except ImportError:
        return
    # OpenVINO runs the static (QDQ) int8 tower as int8, with the same vectors.
    ov = OnnxClip(str(out), provider="openvino")
    assert ov.image_runtime == "openvino" and ov.precision == "int8-static"
    theirs = ov.encode_images(images)
    assert np.sum(theirs * want, axis=1).min() >= 0.99
    assert np.sum(theirs * ours, axis=1).min() >= 0.995  # the same int8 model


def test_export_refuses_before_loading_a_model(tiny_model_dir, onnx_dir, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    cases = [
        (["--out", str(tmp_path / "full")], "not an empty folder"),
        (["--out", str(onnx_dir)], "add --overwrite"),
        (["--out", str(tmp_path / "x"), "--same-identity"], "go with --int8"),
        (["--out", str(tmp_path / "x"), "--calibrate-images", str(tmp_path)], "go with --int8"),
    ]
    for args, message in cases:
        result = run_cli("model", "export", str(tiny_model_dir), *args)
        assert result.exit_code != 0 and message in result.output, (args, result.output)
    assert (tmp_path / "full" / "notes.txt").read_text() == "mine"  # never emptied
    result = run_cli("model", "export", str(tmp_path / "no-such-model"), "--out",
                     str(tmp_path / "y"))
    assert result.exit_code != 0 and "no directory" in result.output
    assert not (tmp_path / "y").exists()


def test_a_damaged_export_is_a_clear_error(onnx_dir, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(onnx_dir, broken)
    (broken / "image.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load the ONNX model"):
        OnnxClip(str(broken))
    (broken / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(AssetdbError, match="cannot read the model manifest"):
        OnnxClip(str(broken))


def test_providers_cuda_first_when_installed():
    cpu, cuda, ov = "CPUExecutionProvider", "CUDAExecutionProvider", "OpenVINOExecutionProvider"
    assert choose_providers([cuda, cpu], "auto", None) == [cuda, cpu]
    assert choose_providers([cuda, cpu], "auto", "cpu") == [cpu]
    assert choose_providers([cpu], "auto", None) == [cpu]
    assert choose_providers([ov, cpu], "openvino", None) == [ov, cpu]
    with pytest.raises(ModelError, match=r"onnxruntime-openvino|assetdb\[openvino\]"):
        choose_providers([cpu], "openvino", None)
    with pytest.raises(ModelError, match="must be one of"):
        choose_providers([cpu], "tpu", None)


OV_PROBE = """
import json, sys
from click.testing import CliRunner
from assetdb.cli.main import cli
result = CliRunner().invoke(cli, ["search", "a red circle", "-k", "10", "--json"],
                            catch_exceptions=False)
assert result.exit_code == 0, result.output
print(json.dumps({"ids": [h["id"] for h in json.loads(result.stdout)],
                  "loaded": sorted(m for m in ("openvino", "torch") if m in sys.modules)}))
"""


def test_openvino_embeds_what_torch_embeds_into_the_database(
        onnx_dir, encoder, initialised, database_url, tmp_path):
    """ASSETDB_ONNX_PROVIDER=openvino: OpenVINO's runtime runs the image tower (ingest),
    its rows hold torch's vectors, and a one-off text query never loads OpenVINO."""
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    import psycopg

    from assetdb.catalog.catalogue import Catalog
    from assetdb.embedding.images import load_image

    ov = OnnxClip(str(onnx_dir), provider="openvino")
    assert ov.image_runtime == "openvino" and ov.name == encoder.name
    images = real_images(tmp_path)
    for batch in (1, 3):
        ov.batch_size = batch
        cos = np.sum(ov.encode_images(images) * encoder.encode_images(images), axis=1)
        assert cos.min() >= 0.9999
    ov.batch_size = 32
    for i in range(10):
        noise(tmp_path / "imgs" / f"n{i}.png", seed=i)
    solid(tmp_path / "imgs" / "red.jpg", (220, 20, 20))
    report = Catalog(initialised).ingest([str(tmp_path / "imgs")], encoder=ov)
    assert report.ingested == 11 and not report.failed
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT uri, embedding::text, status FROM assets").fetchall()
    assert len(rows) == 11 and {r[2] for r in rows} == {"ready"}
    stored = np.array([json.loads(r[1]) for r in rows], dtype=np.float32)
    want = encoder.encode_images([load_image(Path(r[0]), encoder.image_size) for r in rows])
    assert np.min(np.sum(stored * want, axis=1)) >= 0.9999
    torch_hits = [h.id for h in Catalog(initialised).search_text(encoder, "a red circle", k=10)]
    env = {**os.environ, "ASSETDB_MODEL": str(onnx_dir), "ASSETDB_ONNX_PROVIDER": "openvino"}
    done = subprocess.run([sys.executable, "-c", OV_PROBE], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == {"ids": torch_hits, "loaded": []}


def test_openvino_missing_is_named(onnx_dir, monkeypatch):
    from assetdb.embedding.backends import openvino_tower

    monkeypatch.setattr(openvino_tower, "available", lambda: False)  # as if not installed
    with pytest.raises(ModelError, match=r"pip install 'assetdb\[openvino\]'"):
        OnnxClip(str(onnx_dir), provider="openvino")
