"""One shape for every registry that plugins extend (model backends, asset kinds): things
registered from code, things found through an entry-point group, asked in that order
before the built-ins. Each entry point is a function returning one item or a list."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Generic, TypeVar

from assetdb.errors import AssetdbError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, group: str, what: str, error: type[AssetdbError]) -> None:
        self.group, self.what, self.error = group, what, error
        self.registered: list[T] = []  # newest first
        self._plugins: list[T] | None = None

    def register(self, item: T) -> None:
        """Register from code (tests, notebooks); entry points need no call."""
        self.registered.insert(0, item)

    def unregister(self, item: T) -> None:
        if item in self.registered:
            self.registered.remove(item)

    def plugins(self) -> list[T]:
        """What the entry-point group provides, loaded once per process."""
        if self._plugins is None:
            found: list[T] = []
            for ep in entry_points(group=self.group):
                try:
                    made = ep.load()()
                except Exception as exc:  # noqa: BLE001 - name the broken plugin
                    raise self.error(f"the {self.what} plugin {ep.name!r} ({ep.value}) failed "
                                     f"to load: {exc}") from None
                found.extend(made if isinstance(made, list | tuple) else [made])
            self._plugins = found
        return self._plugins

    def reload_plugins(self) -> None:
        """Forget discovered entry points (after installing a plugin in this process)."""
        self._plugins = None
