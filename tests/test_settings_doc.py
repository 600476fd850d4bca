"""Every setting is declared once (assetdb.config.SETTINGS) and documented in the README's
configuration tables, with the same default; no documented setting is missing from the
list, and the code reads no ASSETDB_ variable that the list leaves out."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from assetdb.config import SETTINGS, Settings, read_setting, setting
from assetdb.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
ROW = re.compile(r"^\|\s*`(ASSETDB_[A-Z0-9_]+)`\s*\|\s*(.*?)\s*\|\s*(.*?)\s*\|\s*$")
TEST_ONLY = "ASSETDB_TEST_"  # hooks for the test suite, not settings


def readme_rows() -> dict[str, tuple[str, str]]:
    rows: dict[str, tuple[str, str]] = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        m = ROW.match(line)
        if m:
            assert m[1] not in rows, f"{m[1]} is documented twice"
            rows[m[1]] = (m[2], m[3])
    return rows


def test_every_setting_is_documented_with_its_default():
    rows = readme_rows()
    declared = {s.name for s in SETTINGS}
    assert declared - set(rows) == set(), "settings missing from the README's tables"
    assert set(rows) - declared == set(), "documented settings that the code does not declare"
    for s in SETTINGS:
        default, meaning = rows[s.name]
        assert default == s.documented_default(), s.name
        assert meaning and s.help, s.name


def test_the_code_reads_only_declared_settings():
    used = set()
    for path in (ROOT / "assetdb").rglob("*.py"):
        used |= set(re.findall(r"ASSETDB_[A-Z0-9_]+", path.read_text()))
    used = {name for name in used if not name.startswith(TEST_ONLY)}
    assert used - {s.name for s in SETTINGS} == set()


def test_defaults_kept_elsewhere_agree_with_the_list():
    """Workers keep their option defaults beside their reasons; they must agree."""
    from assetdb.ingest.worker import WorkerOptions

    opts = WorkerOptions()
    assert opts.lease_seconds == setting("ASSETDB_LEASE_SECONDS").default
    assert opts.max_attempts == setting("ASSETDB_MAX_ATTEMPTS").default
    assert opts.retry_delay == setting("ASSETDB_RETRY_DELAY").default
    assert opts.poll_seconds == setting("ASSETDB_POLL_SECONDS").default
    assert opts.batch_size == setting("ASSETDB_BATCH_SIZE").default


def test_settings_and_api_config_read_the_list(monkeypatch):
    from assetdb.api.config import api_config_from_env

    for s in SETTINGS:
        monkeypatch.delenv(s.name, raising=False)
    monkeypatch.setenv("ASSETDB_BATCH_SIZE", "7")
    monkeypatch.setenv("ASSETDB_API_MAX_UPLOAD_MB", "3")
    monkeypatch.setenv("ASSETDB_API_PROTECT_READS", "1")
    monkeypatch.setenv("ASSETDB_API_TOKEN", "t")
    settings, config = Settings.from_env(), api_config_from_env()
    assert settings.batch_size == 7 and settings.model == "clip-ViT-B-32"
    assert settings.hnsw_ef_search == read_setting("ASSETDB_HNSW_EF_SEARCH") == 100
    assert config.max_upload_bytes == 3 * 2**20 and config.protect_reads
    assert config.busy_timeout_s == 5.0 and config.max_results == 500
    monkeypatch.setenv("ASSETDB_HNSW_EF_SEARCH", "0")
    with pytest.raises(ConfigError, match="ASSETDB_HNSW_EF_SEARCH must be >= 1"):
        Settings.from_env()
