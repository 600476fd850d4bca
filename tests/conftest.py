"""Test fixtures: one embedded PostgreSQL per test session, a fresh database per test,
and a tiny CLIP model (random weights, real transformers classes) built once per session
and loaded through the same code path as a real model. No mocks of the database."""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner, Result

from assetdb.config import Settings
from assetdb.db import embedded
from assetdb.db.engine import reset_engines

# Words the tiny model's tokenizer spells whole (others fall back to bytes).
TINY_WORDS = ["a", "photo", "of", "red", "green", "blue", "circle", "square", "cat", "dog", "car"]

_db_counter = itertools.count()

# No network in tests: the model hub is never asked (a missing model fails at once).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from assetdb.embedding.tiny import build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("models") / "tiny-clip", words=TINY_WORDS)


@pytest.fixture(scope="session")
def tiny_model_dir_64(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second tiny model of another dimension (for model-mismatch and re-embed tests)."""
    from assetdb.embedding.tiny import build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("models") / "tiny-clip-64",
                           words=TINY_WORDS, embed_dim=64, seed=1)


def server_dir() -> Path:
    """A directory the embedded server's own user can reach. Not under pytest's tmp_path:
    pytest keeps /tmp/pytest-of-<user> at mode 0700 (and re-applies it when another pytest
    starts), which locks out PostgreSQL, which runs as another user when tests run as root."""
    return embedded.scratch_home("assetdb-test-")


@pytest.fixture(scope="session")
def pg_home() -> Iterator[Path]:
    home = server_dir()
    embedded.start(home)
    yield home
    reset_engines()
    embedded.stop(home)
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def server_url(pg_home: Path) -> str:
    url = embedded.running_url(pg_home)
    assert url is not None
    return url


def _with_database(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    return base.rsplit("/", 1)[0] + "/" + name + ("?" + query if query else "")


@pytest.fixture
def database_url(server_url: str, monkeypatch: pytest.MonkeyPatch,
                 tiny_model_dir: Path, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on the session's embedded server, and the environment
    (ASSETDB_DATABASE_URL, ASSETDB_MODEL, ASSETDB_HOME) pointing at it."""
    name = f"t{os.getpid()}_{next(_db_counter)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _with_database(server_url, name)
    monkeypatch.setenv("ASSETDB_DATABASE_URL", url)
    monkeypatch.setenv("ASSETDB_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("ASSETDB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ASSETDB_READ_DATABASE_URL", raising=False)  # reads: this database
    yield url
    reset_engines()
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings.from_env()


@pytest.fixture
def encoder(tiny_model_dir: Path):  # noqa: ANN201
    from assetdb.embedding.encoder import load_encoder

    return load_encoder(str(tiny_model_dir))


def run_cli(*args: str, input: str | None = None) -> Result:
    """Run the real click CLI in-process (the model stays loaded between calls)."""
    from assetdb.cli.main import cli

    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


@pytest.fixture
def initialised(settings: Settings) -> Settings:
    result = run_cli("init")
    assert result.exit_code == 0, result.output
    return settings


@pytest.fixture
def procs() -> Iterator[list]:
    """Subprocesses a test starts (workers, ingests): killed if the test leaves any."""
    started: list = []
    yield started
    for p in started:  # a failed test must not leave workers behind
        if p.poll() is None:
            p.kill()
            p.wait()
