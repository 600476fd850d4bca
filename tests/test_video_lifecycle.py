"""Video through the rest of the lifecycle (issue 17): workers embed a registered video's
frames, a model switch re-embeds them into a shadow table swapped in atomically, a
same-model re-embed replaces them, and export writes them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sqlalchemy import text

from assetdb.db.engine import connect
from assetdb.demo import media
from assetdb.embedding.encoder import load_encoder
from assetdb.ingest.model_switch import reembed
from tests.conftest import run_cli

pytest.importorskip("av")


def _frames(settings):
    with connect(settings) as conn:
        rows = conn.execute(text(
            "SELECT f.asset_id, f.seconds, f.embedding_model, vector_dims(f.embedding) AS dim "
            "FROM asset_frames f ORDER BY f.asset_id, f.position")).all()
        frames_type = conn.execute(text(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
            "'asset_frames'::regclass AND attname = 'embedding'")).scalar()
        index = conn.execute(text("SELECT indexname FROM pg_indexes WHERE tablename = "
                                  "'asset_frames' AND indexdef LIKE '%hnsw%'")).scalar()
    return rows, frames_type, index


def test_worker_then_switch_then_export(initialised, tmp_path, encoder, tiny_model_dir_64):
    (tmp_path / "v").mkdir()
    video = media.write_video(tmp_path / "v" / "clip.mp4", media.scene_plan(2, 3, 12.0),
                              fps=4, side=32)
    assert run_cli("ingest", str(video.parent), "--no-embed").exit_code == 0
    assert run_cli("worker", "--once").exit_code == 0  # the worker embeds its frames
    rows, frames_type, _ = _frames(initialised)
    assert len(rows) >= 3 and {r.dim for r in rows} == {encoder.dimension}
    seconds_before = [r.seconds for r in rows]

    new = load_encoder(str(tiny_model_dir_64))
    report = reembed(initialised, new, batch_size=4)
    assert report.switched
    rows, frames_type, index = _frames(initialised)
    assert frames_type == "vector(64)" and index == "asset_frames_embedding_hnsw"
    assert [r.seconds for r in rows] == seconds_before
    assert {(r.embedding_model, r.dim) for r in rows} == {(new.name, 64)}
    with connect(initialised) as conn:  # no shadow left behind
        assert conn.execute(text("SELECT to_regclass('asset_frames_next')")).scalar() is None

    # Same model, in place: the frames are replaced, not duplicated.
    report = reembed(initialised, new, batch_size=4)
    assert report.embedded == 1 and len(_frames(initialised)[0]) == len(rows)

    out = tmp_path / "export.npy"
    result = run_cli("export", "-o", str(out), "--format", "npy", "--json")
    assert result.exit_code == 0, result.output
    frames_file = tmp_path / "export.frames.npy"
    frames = np.load(frames_file)
    assert frames.shape == (len(rows), 64)
    meta = [json.loads(line) for line in
            (tmp_path / "export.frames.jsonl").read_text().splitlines()]
    assert [m["seconds"] for m in meta] == seconds_before
