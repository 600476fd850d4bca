"""A small catalogue for API and browser tests, and a real uvicorn server in a thread."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assetdb.config import Settings
from assetdb.ingest.ingest_files import ingest
from tests.images import COLORS, noise, solid

# name -> (sidecar fields); the images are solid colours plus a few noise images.
CATALOGUE = {
    "red-1.png": {"title": "Red poster", "tags": ["poster", "red"], "brand": "acme",
                  "captured_at": "2024-03-01", "description": "A red poster for spring."},
    "red-2.png": {"title": "Red banner", "tags": ["banner", "red"], "brand": "acme",
                  "captured_at": "2024-06-01"},
    "blue-1.png": {"title": "Blue poster", "tags": ["poster", "blue"], "brand": "zenith",
                   "captured_at": "2024-03-15"},
    "green-1.png": {"title": "Green field", "tags": ["nature", "green"], "brand": "zenith",
                    "captured_at": "2023-08-20"},
    "yellow-1.png": {"title": "Yellow sun", "tags": ["nature"], "brand": "acme",
                     "captured_at": "2022-07-04"},
    "noise-1.png": {"title": "Static one", "tags": ["texture"], "brand": "acme"},
    "noise-2.png": {"title": "Static two", "tags": ["texture"], "brand": "zenith"},
    "noise-3.png": {"title": "Static three", "tags": ["texture"], "brand": "acme"},
}


def make_catalogue(settings: Settings, encoder: object, root: Path) -> dict[str, int]:
    """Write the images and their sidecar, ingest them; returns file name -> asset id."""
    folder = root / "assets"
    for i, name in enumerate(CATALOGUE):
        if name.startswith("noise"):
            noise(folder / name, seed=i, size=(96, 64))
        else:
            solid(folder / name, COLORS[name.split("-")[0]], size=(96, 64))
    sidecar = root / "meta.json"
    # The sidecar's paths are relative to its own folder.
    sidecar.write_text(json.dumps({f"assets/{k}": v for k, v in CATALOGUE.items()}))
    report = ingest(settings, [str(folder)], metadata_file=sidecar, encoder=encoder)
    assert report.failed == 0, report.failures
    from sqlalchemy import text

    from assetdb.db.engine import connect

    with connect(settings) as conn:
        rows = conn.execute(text("SELECT id, uri FROM assets")).all()
    return {Path(r.uri).name: r.id for r in rows}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(app: object) -> Iterator[str]:
    """Serve the app with uvicorn on 127.0.0.1 in a thread; yields the base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                          lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@dataclass
class Served:
    first: Any = None  # what `ready` returned once the server answered
    output: str = ""  # the process's output, once it has stopped


@contextmanager
def assetdb_serve(port: int, ready: Callable[[], Any]) -> Iterator[Served]:
    """The real `assetdb serve` in its own process on 127.0.0.1:port; `ready()` is tried
    (OSError: not yet) until it answers. Its output is on the result after the block."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "from assetdb.cli.main import cli; cli()", "serve",
         "--port", str(port), "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    served = Served()
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                served.first = ready()
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline, "assetdb serve did not answer"
                time.sleep(0.5)
        yield served
    finally:
        proc.terminate()
        served.output = proc.communicate(timeout=30)[0]
