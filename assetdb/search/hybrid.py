"""Search by words and meaning: `semantic` (CLIP vectors), `keyword` (full-text search over
what people wrote and OCR text) and `hybrid` (both, fused by reciprocal rank).

Fusion: each side is read FUSION_DEPTH deep (or k, when more), and an asset scores
1/(RRF_K + rank) on each side it appears in, twice that (EVERY_WORD_WEIGHT) on the keyword
side when it matches every word of the query; ties go to the lower id. Plain RRF ties a
keyword-only match with the best semantic match that shares no word with the query, and
in a large catalogue the asset that carries a unique printed word is rarely among the
semantic side's first hundred: the weight settles that tie for the words. The depth does not
depend on the page asked for, so that pages of one query are slices of one ranking.
Migration 0007's `assetdb_hybrid_search` fuses by the same rule (a test holds the two
together). The vector side is search.query's nearest(), through searches._nearest: its
plan (exact scan or HNSW) is the same as a semantic search's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Connection, text

from assetdb.config import Settings
from assetdb.db import schema
from assetdb.db.engine import connect_read
from assetdb.db.vectors import vector_text
from assetdb.embedding.encoder import Encoder
from assetdb.errors import FilterError
from assetdb.search import keyword
from assetdb.search.filters import Filters, check_min_similarity
from assetdb.search.query import Hit, _classifications
from assetdb.search.searches import _check_k, _nearest

MODES = ("hybrid", "semantic", "keyword")
DEFAULT_MODE = "hybrid"
RRF_K = 60
FUSION_DEPTH = 100
EVERY_WORD_WEIGHT = 2.0


@dataclass
class RankedHit(Hit):
    """A hit and why it matched: `score` orders the results (hybrid: the fused score,
    semantic: the similarity, keyword: the keyword score); the ranks are 1-based places
    on each side (None: not among that side's candidates)."""

    score: float = 0.0
    semantic_rank: int | None = None
    keyword_rank: int | None = None
    keyword_score: float | None = None
    snippet: str | None = None  # the matching text, the query's words in <mark>...</mark>


@dataclass
class SearchResult:
    mode: str  # the mode that ran (a hybrid search may fall back to semantic)
    hits: list[RankedHit]
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "warnings": self.warnings,
                "results": [asdict(h) for h in self.hits]}


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise FilterError(f"unknown search mode {mode!r}; choose from {', '.join(MODES)}")
    return mode


def check_request(query: str, mode: str, k: int, min_similarity: float | None) -> None:
    """Everything that can be answered before a model loads."""
    check_mode(mode)
    if not query.strip():
        raise FilterError("the search text is empty")
    _check_k(k)
    check_min_similarity(min_similarity)
    if mode == "keyword" and min_similarity is not None:
        raise FilterError("min similarity needs the semantic side: use --mode hybrid or "
                          "semantic, or leave it out")


def fuse(semantic: list[int], keyword_ids: list[int],
         every_word: set[int] | None = None) -> list[tuple[int, float]]:
    """Reciprocal rank fusion of two rankings (best first): (id, score), best first; a
    keyword match with every word of the query (`every_word`) counts EVERY_WORD_WEIGHT
    times."""
    scores: dict[int, float] = {}
    for place, asset_id in enumerate(semantic, start=1):
        scores[asset_id] = scores.get(asset_id, 0.0) + 1.0 / (RRF_K + place)
    for place, asset_id in enumerate(keyword_ids, start=1):
        weight = EVERY_WORD_WEIGHT if every_word and asset_id in every_word else 1.0
        scores[asset_id] = scores.get(asset_id, 0.0) + weight / (RRF_K + place)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def search(
    settings: Settings, query: str, *, mode: str = DEFAULT_MODE, encoder: Encoder | None = None,
    k: int = 10, filters: Filters | None = None, min_similarity: float | None = None,
    depth: int | None = None,
) -> SearchResult:
    """Search in one of MODES. semantic and hybrid need the encoder; keyword needs none.
    `depth`: how deep each side is read before fusing (default max(k, FUSION_DEPTH)); the
    API passes its result cap, so that all its pages come from one ranking."""
    check_request(query, mode, k, min_similarity)
    filters = filters or Filters()
    vector = None
    if mode != "keyword":
        if encoder is None:
            raise ValueError(f"a {mode} search needs the encoder")
        vector = encoder.encode_texts([query])[0]
    warnings: list[str] = []
    with connect_read(settings) as conn:  # a replica when one is set (docs/scaling.md)
        meta = schema.require_meta(conn)
        if encoder is not None and mode != "keyword":
            schema.check_model(meta, encoder.name, encoder.dimension,
                               followed=not settings.model_is_explicit)
        if mode != "semantic" and not keyword.available(conn):
            if mode == "keyword":
                raise FilterError("keyword search needs the database upgraded: run "
                                  "`assetdb init`")
            warnings.append("keyword search is not set up in this database (run `assetdb "
                            "init`): semantic ranking only")
            mode = "semantic"
        elif mode != "semantic" and not keyword.has_words(conn, query):
            if mode == "keyword":
                raise FilterError(f"the query {query!r} has no words to search for")
            warnings.append("the query has no words to match: semantic ranking only")
            mode = "semantic"
        if mode == "semantic":
            assert vector is not None
            hits = _nearest(settings, conn, meta, vector, k, filters, (), min_similarity)
            ranked = [RankedHit(**asdict(h), score=h.similarity, semantic_rank=i)
                      for i, h in enumerate(hits, start=1)]
            return SearchResult("semantic", ranked, warnings)
        if mode == "keyword":
            return SearchResult("keyword", _keyword(conn, query, k, filters, meta), warnings)
        assert vector is not None
        wide = max(k, depth or FUSION_DEPTH)
        hits = _hybrid(settings, conn, meta, query, vector, k, wide, filters, min_similarity)
        return SearchResult("hybrid", hits, warnings)


def _keyword(conn: Connection, query: str, k: int, filters: Filters,
             meta: dict[str, str]) -> list[RankedHit]:
    matches = keyword.ranked(conn, query, k=k, filters=filters, model=meta["model"])
    ids = [m.asset_id for m in matches]
    found = _details(conn, ids, None)
    snips = keyword.snippets(conn, query, ids)
    return [RankedHit(**asdict(found[m.asset_id]), score=round(m.score, 6), keyword_rank=i,
                      keyword_score=round(m.score, 6), snippet=snips.get(m.asset_id))
            for i, m in enumerate(matches, start=1)]


def _hybrid(settings: Settings, conn: Connection, meta: dict[str, str], query: str,
            vector: np.ndarray, k: int, depth: int, filters: Filters,
            min_similarity: float | None) -> list[RankedHit]:
    semantic = _nearest(settings, conn, meta, vector, depth, filters, (), None)
    matches = keyword.ranked(conn, query, k=depth, filters=filters, model=meta["model"])
    sem_place = {h.id: i for i, h in enumerate(semantic, start=1)}
    kw_place = {m.asset_id: (i, m.score) for i, m in enumerate(matches, start=1)}
    fused = fuse([h.id for h in semantic], [m.asset_id for m in matches],
                 {m.asset_id for m in matches if m.every_word})
    by_id: dict[int, Hit] = {h.id: h for h in semantic}
    by_id.update(_details(conn, [i for i, _ in fused if i not in by_id], vector))
    if min_similarity is not None:
        fused = [(i, s) for i, s in fused if by_id[i].similarity >= min_similarity]
    fused = fused[:k]
    snips = keyword.snippets(conn, query, [i for i, _ in fused if i in kw_place])
    out = []
    for asset_id, score in fused:
        place, kw_score = kw_place.get(asset_id, (None, None))
        out.append(RankedHit(
            **asdict(by_id[asset_id]), score=round(score, 6),
            semantic_rank=sem_place.get(asset_id), keyword_rank=place,
            keyword_score=None if kw_score is None else round(kw_score, 6),
            snippet=snips.get(asset_id)))
    return out


def _details(conn: Connection, ids: list[int], vector: np.ndarray | None) -> dict[int, Hit]:
    """Hits for assets found by their words: their row, their similarity to `vector`
    (when there is one) and their classifications."""
    if not ids:
        return {}
    similarity = ("1 - (embedding <=> CAST(:v AS vector))" if vector is not None
                  else "NULL::float8")
    params: dict[str, Any] = {"ids": ids}
    if vector is not None:
        params["v"] = vector_text(vector)
    rows = conn.execute(text(
        f"SELECT id, uri, title, kind, tags, hidden, {similarity} AS similarity "
        "FROM assets WHERE id = ANY(:ids)"), params).all()
    found = _classifications(conn, ids)
    return {r.id: Hit(id=r.id, uri=r.uri, title=r.title, kind=r.kind, tags=list(r.tags or []),
                      similarity=None if r.similarity is None else round(float(r.similarity), 6),
                      hidden=r.hidden, labels=found.get(r.id, ({}, {}))[0],
                      moderation=found.get(r.id, ({}, {}))[1])
            for r in rows}
