"""Turn SIGINT/SIGTERM into a stop request that long-running commands check between
batches, so they end cleanly (batch written or released) and exit 0."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import click


@contextmanager
def stop_on_signals(what: str) -> Iterator[threading.Event]:
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        if stop.is_set():  # a second signal: stop now, as an ordinary interrupt would
            raise KeyboardInterrupt
        click.echo(f"\n{signal.Signals(signum).name}: {what}", err=True)
        stop.set()

    if threading.current_thread() is not threading.main_thread():
        yield stop  # signals reach only the main thread (e.g. under some test runners)
        return
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
