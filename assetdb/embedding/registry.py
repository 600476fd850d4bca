"""Model backends: which code loads a given model name or directory.

A backend claims model names (a prefix such as `onnx:`, or a directory holding its
files) and loads them as an Encoder. Packages add backends through the entry-point group
`assetdb.backends`, the way llm's plugins register embedding models: each entry point is
a function that returns a Backend (or a list of them)::

    [project.entry-points."assetdb.backends"]
    my-backend = "my_package.assetdb_backend:backend"

Plugins are asked before the built-in backends, so a plugin can claim a directory the
sentence-transformers backend would otherwise try; the built-in backend claims
everything else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from assetdb.errors import ModelError
from assetdb.plugins import Registry

ENTRY_POINT_GROUP = "assetdb.backends"


@dataclass(frozen=True)
class Backend:
    name: str
    claims: Callable[[str], bool]  # True for a model name or directory it loads
    load: Callable[[str, str | None, int], object]  # (model, device, batch size) -> Encoder


def _sentence_transformers_clip() -> Backend:
    def load(model: str, device: str | None, batch_size: int) -> object:
        from assetdb.embedding.backends.st_clip import SentenceTransformerClip

        return SentenceTransformerClip(model, device=device, batch_size=batch_size)

    return Backend("sentence-transformers-clip", lambda _model: True, load)


def _onnx_clip() -> Backend:
    """Directories made by `assetdb model export` (they hold its manifest)."""

    def claims(model: str) -> bool:
        from assetdb.embedding.backends.onnx_clip import claims

        return claims(model)

    def load(model: str, device: str | None, batch_size: int) -> object:
        from assetdb.embedding.backends.onnx_clip import OnnxClip

        return OnnxClip(model, device=device, batch_size=batch_size)

    return Backend("onnx-clip", claims, load)


def _clip_text() -> Backend:
    """Text models made by `assetdb finetune --distill-text` (they hold its manifest)."""

    def claims(model: str) -> bool:
        from assetdb.embedding.text_model import is_text_model

        return is_text_model(model)

    def load(model: str, device: str | None, batch_size: int) -> object:
        from assetdb.embedding.backends.clip_text import ClipTextEncoder

        return ClipTextEncoder(model, device=device, batch_size=batch_size)

    return Backend("clip-text", claims, load)


_REGISTRY: Registry[Backend] = Registry(ENTRY_POINT_GROUP, "model backend", ModelError)
register = _REGISTRY.register  # from code (tests, notebooks); entry points need no call
reload_plugins = _REGISTRY.reload_plugins


def backends() -> list[Backend]:
    """Every backend, in the order they are asked: registered, plugins, built-in (the ONNX
    and text-model ones claim only their own directories; sentence-transformers everything
    else)."""
    return [*_REGISTRY.registered, *_REGISTRY.plugins(), _onnx_clip(), _clip_text(),
            _sentence_transformers_clip()]


def backend_for(model: str) -> Backend:
    for backend in backends():
        if backend.claims(model):
            return backend
    raise ModelError(f"no model backend loads {model!r}")  # pragma: no cover - builtin claims all
