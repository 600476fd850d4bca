"""Extension points called by services at well-defined moments.

MODEL_SWITCH_HOOKS: "module:function" paths, each called as fn(conn, encoder) inside the
transaction that switches the catalogue to a new model (`assetdb reembed --model NEW`),
after assetdb_meta names the new model. Use it to refresh anything else that holds
vectors of the old model (e.g. text vectors of concepts); an exception aborts the switch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

MODEL_SWITCH_HOOKS: list[str] = [
    "assetdb.sqlsurface.concepts:refresh_concepts",  # concepts' text vectors
]


def resolve(path: str) -> Callable[..., Any]:
    module, _, attr = path.partition(":")
    if not module or not attr:
        raise ValueError(f"a hook is 'module:function', got {path!r}")
    return getattr(importlib.import_module(module), attr)


def run_model_switch_hooks(conn: Any, encoder: Any) -> None:
    for path in MODEL_SWITCH_HOOKS:
        resolve(path)(conn, encoder)
