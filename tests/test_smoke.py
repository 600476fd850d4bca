from tests.conftest import run_cli
from tests.images import noise


def test_init_ingest_search(initialised, tmp_path):
    for i in range(5):
        noise(tmp_path / "imgs" / f"n{i}.png", seed=i)
    result = run_cli("ingest", str(tmp_path / "imgs"))
    assert result.exit_code == 0, result.output
    assert "5 ingested" in result.output
    result = run_cli("search", "a red circle", "-k", "3", "--json")
    assert result.exit_code == 0, result.output
