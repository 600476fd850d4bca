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
from importlib.metadata import entry_points

from assetdb.errors import ModelError

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


_registered: list[Backend] = []
_plugins: list[Backend] | None = None


def register(backend: Backend) -> None:
    """Register a backend from code (tests, notebooks); entry points need no call."""
    _registered.insert(0, backend)


def _load_plugins() -> list[Backend]:
    global _plugins
    if _plugins is None:
        found: list[Backend] = []
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                made = ep.load()()
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not hide others
                raise ModelError(f"the model backend plugin {ep.name!r} ({ep.value}) failed "
                                 f"to load: {exc}") from None
            found.extend(made if isinstance(made, list | tuple) else [made])
        _plugins = found
    return _plugins


def reload_plugins() -> None:
    """Forget discovered entry points (after installing a plugin in this process)."""
    global _plugins
    _plugins = None


def backends() -> list[Backend]:
    """Every backend, in the order they are asked: registered, plugins, built-in."""
    return [*_registered, *_load_plugins(), _sentence_transformers_clip()]


def backend_for(model: str) -> Backend:
    for backend in backends():
        if backend.claims(model):
            return backend
    raise ModelError(f"no model backend loads {model!r}")  # pragma: no cover - builtin claims all
