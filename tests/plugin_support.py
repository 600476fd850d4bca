"""Install a plugin the way pip would, for one test: a module and a `*.dist-info` folder
whose entry_points.txt names it, on sys.path, so importlib.metadata finds it."""

from __future__ import annotations

from pathlib import Path

import pytest


def install_plugin(site: Path, monkeypatch: pytest.MonkeyPatch, *, dist: str, group: str,
                   entry: str, module: str | None = None, source: str | None = None) -> None:
    """`entry` is 'name = module:function'; `source` (if given) becomes module.py."""
    site.mkdir(parents=True, exist_ok=True)
    if module and source is not None:
        (site / f"{module}.py").write_text(source)
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n{entry}\n")
    monkeypatch.syspath_prepend(str(site))
