"""The installed product needs no checkout (issue 14, item 1): the wheel carries the
schema migrations, and `init`, `ingest`, `search` work from another folder with the
package imported from the wheel's files, not from this checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from PIL import Image

from tests.conftest import server_dir

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_install_runs_init_ingest_search_from_another_folder(tmp_path, tiny_model_dir):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(wheels), str(ROOT)], check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("assetdb-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "assetdb/migrations/env.py" in names
    assert "assetdb/migrations/versions/0001_assets.py" in names
    # The demo model ships whole: its image model and its multilingual text model.
    assert "assetdb/demo/model/model.safetensors" in names
    assert "assetdb/demo/model/assetdb_text_model_ref.json" in names
    assert "assetdb/demo/model/text/model.safetensors" in names
    assert "assetdb/demo/model/text/assetdb_text_model.json" in names

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(target), str(wheel)], check=True, capture_output=True, timeout=300)
    images = tmp_path / "pictures"
    images.mkdir()
    for name, colour in (("red.png", "red"), ("blue.png", "blue")):
        Image.new("RGB", (40, 30), colour).save(images / name)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETDB_")}
    # The wheel's files first on the path: the checkout's editable finder comes later.
    env.update(PYTHONPATH=str(target), ASSETDB_HOME=str(server_dir() / "home"),
               ASSETDB_MODEL=str(tiny_model_dir))

    # One process runs init, ingest and search (the model loads once), as a user's shell
    # would run them, and reports where assetdb was imported from.
    script = (
        "import io, json, sys, contextlib, assetdb\n"
        "from assetdb.cli.main import cli\n"
        "def run(*args):\n"
        "    out = io.StringIO()\n"
        "    with contextlib.redirect_stdout(out):\n"
        "        cli.main(list(args), standalone_mode=False)\n"
        "    return out.getvalue()\n"
        "run('init')\n"
        f"report = json.loads(run('ingest', {str(images)!r}, '--json'))\n"
        "hits = json.loads(run('search', 'a red photo', '-k', '2', '--json'))\n"
        "print(json.dumps({'file': assetdb.__file__, 'ingested': report['ingested'], "
        "'hits': len(hits['results'] if isinstance(hits, dict) else hits)}))\n"
    )
    try:
        done = subprocess.run([sys.executable, "-c", script], cwd=elsewhere, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (done.stdout, done.stderr)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result["file"].startswith(str(target)), result
        assert result["ingested"] == 2 and result["hits"] == 2
    finally:
        subprocess.run([sys.executable, "-m", "assetdb", "db", "stop"], cwd=elsewhere, env=env,
                       capture_output=True, timeout=120)
