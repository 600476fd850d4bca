"""Separate text encoders for an image model's space: their manifest, how an image model
names one, and the checks that run before any weights load.

A text model directory (made by `assetdb finetune --distill-text`) holds a CLIP text
tower with its own tokenizer and `assetdb_text_model.json`: its dimension, the languages
it was trained on and the fingerprint of the image model whose space it writes into. An
image model directory may name its text model in `assetdb_text_model_ref.json`
({"text_model": "text"}, relative to the directory); ASSETDB_TEXT_MODEL overrides that
(`builtin`: the image model's own text tower).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from assetdb.errors import ModelError

MANIFEST = "assetdb_text_model.json"
REFERENCE = "assetdb_text_model_ref.json"
BUILTIN = "builtin"  # ASSETDB_TEXT_MODEL value: the image model's own text tower
FORMAT = 1


@dataclass(frozen=True)
class TextManifest:
    path: Path
    dimension: int
    languages: tuple[str, ...]
    image_fingerprint: str | None
    teacher: str

    @property
    def name(self) -> str:
        return str(self.path)


def is_text_model(name: str) -> bool:
    return (Path(name).expanduser() / MANIFEST).is_file()


def read_manifest(name: str) -> TextManifest:
    path = Path(name).expanduser()
    file = path / MANIFEST
    if not file.is_file():
        raise ModelError(f"{name!r} is not a text model made by `assetdb finetune "
                         f"--distill-text` (it has no {MANIFEST})")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            raise ModelError(f"{file}: format {data.get('format')!r}, this assetdb reads "
                             f"{FORMAT}")
        return TextManifest(path.resolve(), int(data["dimension"]),
                            tuple(data.get("languages", ())),
                            data.get("image_fingerprint"), str(data.get("teacher", "")))
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{file} is damaged: {exc}") from None


def fingerprint(model_dir: str | Path) -> str | None:
    """A short hash of an image model's weights (None when there is no weights file to
    hash, e.g. a hub name): a text model records its teacher's."""
    path = Path(model_dir).expanduser() / "model.safetensors"
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def declared_dimension(model: str) -> int | None:
    """The vector size a model directory declares in its files (a CLIP config's
    projection_dim, an ONNX export's manifest), without loading it; None if unknown."""
    root = Path(model).expanduser()
    for file, keys in (("assetdb-model.json", ("dimension",)),
                       ("config.json", ("projection_dim",))):
        path = root / file
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                return None
            for key in keys:
                if isinstance(data.get(key), int):
                    return int(data[key])
    return None


def referenced_text_model(image_model: str) -> str | None:
    """The text model an image model directory names, as an absolute path; None if none."""
    root = Path(image_model).expanduser()
    ref = root / REFERENCE
    if not ref.is_file():
        return None
    try:
        target = json.loads(ref.read_text(encoding="utf-8"))["text_model"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{ref} is damaged: {exc}") from None
    path = (root / str(target)).resolve()
    if not path.is_dir():
        raise ModelError(f"{ref} names the text model {target!r}, but {path} is missing")
    return str(path)


def check_pair(image_model: str, image_dimension: int | None, text: TextManifest) -> None:
    """Refuse a text model that does not write into the image model's space: another
    dimension, or distilled from another image model. Reads manifests only."""
    if image_dimension is not None and text.dimension != image_dimension:
        raise ModelError(
            f"the text model {text.name!r} makes {text.dimension}-d vectors, the image model "
            f"{image_model!r} {image_dimension}-d: they are not one space (unset "
            "ASSETDB_TEXT_MODEL, or distil a text model from this image model)"
        )
    mine = fingerprint(image_model)
    if text.image_fingerprint and mine and mine != text.image_fingerprint:
        raise ModelError(
            f"the text model {text.name!r} was distilled for the image model with weights "
            f"{text.image_fingerprint}, not for {image_model!r} ({mine}): its vectors would "
            "not be comparable with this model's image vectors"
        )


def write_reference(image_model_dir: Path, text_model_dir: Path) -> Path:
    import os

    rel = os.path.relpath(text_model_dir.resolve(), image_model_dir.resolve())
    out = image_model_dir / REFERENCE
    out.write_text(json.dumps({"text_model": rel}, indent=1) + "\n", encoding="utf-8")
    return out
