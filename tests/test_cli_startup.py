"""`assetdb --help` answers without importing torch or the model stack."""

import subprocess
import sys

import pytest

PROBE = """
import sys
from click.testing import CliRunner
from assetdb.cli.main import cli
result = CliRunner().invoke(cli, {args!r})
assert result.exit_code == 0, result.output
heavy = sorted(m for m in ("torch", "sentence_transformers", "transformers") if m in sys.modules)
print("HEAVY:" + ",".join(heavy))
print(result.output)
"""


@pytest.mark.parametrize("args", [["--help"], ["search", "--help"], ["ingest", "--help"],
                                  ["db", "url", "--help"]])
def test_help_does_not_import_torch(args):
    out = subprocess.run([sys.executable, "-c", PROBE.format(args=args)],
                         capture_output=True, text=True, check=True).stdout
    assert "HEAVY:\n" in out
    assert "Usage:" in out


def test_help_lists_every_command():
    from assetdb.cli.main import COMMANDS, SHORT_HELP

    assert set(COMMANDS) == set(SHORT_HELP)
    out = subprocess.run([sys.executable, "-m", "assetdb", "--help"], capture_output=True,
                         text=True, check=True).stdout
    for name in COMMANDS:
        assert f"  {name} " in out
