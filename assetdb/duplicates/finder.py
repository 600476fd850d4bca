"""Find groups of near-duplicate assets, suggest a keeper in each, and act on the rest
(tag, hide, unhide). Never deletes a file or a row.

1. Backfill: assets without a perceptual hash of their current content (catalogued
   before hashes existed, or embedded by a worker) are hashed, a chunk at a time.
2. Candidates: each asset's k nearest vector neighbours (HNSW), found once and kept
   (duplicate_neighbours), so an interrupted run resumes; plus pairs whose pHashes share
   a 16-bit band. A weak or untrained vector model can miss a resized copy among its
   neighbours; the bands do not depend on it.
3. Confirmation: hash distance within the threshold (1 - (pHash + dHash bits)/128 >= T),
   or, with
   semantic=True, cosine similarity of the vectors >= T (different photos of one scene).
4. Groups: connected components of the confirmed pairs (union-find). The keeper is the
   asset a user marked, else the largest in pixels, then the oldest in the catalogue
   (created_at), then the smallest id. Each member's similarity is to its keeper.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, exists, or_, select, text

from assetdb.config import Settings
from assetdb.db import schema
from assetdb.db.duplicate_models import DuplicateHide
from assetdb.db.engine import connect
from assetdb.duplicates import store
from assetdb.duplicates.hashing import (
    HASH_EDGE,
    ImageHashes,
    bits_for,
    distance,
    hash_image,
    similarity,
)
from assetdb.errors import FilterError
from assetdb.search.filters import Filters
from assetdb.search.query import A, where_clauses

# Hash similarity, 1 - (pHash bits + dHash bits)/128: 0.8 allows 25 bits. Tuned on real
# photographs (benchmarks/duplicates.py, docs/duplicates.md): resizes, recompression,
# re-saves, brightness and a logo sit well inside it (at most 24), a 10% crop mostly
# (up to 32), different photos of similar subjects outside it (29 at the closest).
DEFAULT_THRESHOLD = 0.8
# Cosine similarity of vectors for --semantic (model-dependent: check with your model).
DEFAULT_SEMANTIC_THRESHOLD = 0.92
DEFAULT_NEIGHBOURS = 16
MAX_NEIGHBOURS = 100
SCAN_CHUNK = 256  # assets per neighbour query (one LATERAL statement, then a commit)
HASH_CHUNK = 64  # assets hashed between commits by the backfill
SCAN_META_KEY = "duplicate_scan_k"

# progress(stage, total) -> update(n): one bar per stage ("hashing", "neighbours").
Progress = Callable[[str, int], Callable[[int], None]]


def check_threshold(value: float | None) -> float | None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise FilterError(f"the threshold must lie between 0 and 1, got {value:g}")
    return value


def check_neighbours(value: int) -> int:
    if not 1 <= value <= MAX_NEIGHBOURS:
        raise FilterError(f"neighbours must lie between 1 and {MAX_NEIGHBOURS}")
    return value


def check_tag(tag: str | None) -> str | None:
    if tag is not None and not tag.strip():
        raise FilterError("the tag is empty")
    return tag.strip() if tag is not None else None


@dataclass
class Member:
    id: int
    uri: str
    title: str | None
    width: int | None
    height: int | None
    bytes: int | None
    created_at: datetime | None
    keeper: bool
    marked_keeper: bool  # a user chose it (the page, the API)
    similarity: float  # to the keeper (1.0 for the keeper)
    distance: int | None  # hash bits (pHash + dHash) from the keeper; None without hashes
    hidden: bool  # hidden from searches (as a duplicate, or by moderation)
    hidden_as_duplicate: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Group:
    keeper_id: int
    members: list[Member]  # the keeper first, then by similarity

    def as_dict(self) -> dict[str, Any]:
        return {"keeper_id": self.keeper_id, "size": len(self.members),
                "members": [m.as_dict() for m in self.members]}


@dataclass
class DuplicatesReport:
    rule: str  # "hash" or "semantic"
    threshold: float
    max_distance: int | None  # pHash + dHash bits (rule "hash")
    neighbours: int
    assets: int = 0  # in scope
    unhashed: int = 0  # in scope and still without a hash (not backfilled, or unreadable)
    hashed: int = 0  # hashed by this run's backfill
    hash_failures: list[dict[str, str]] = field(default_factory=list)
    scanned: int = 0  # assets whose neighbours this run looked up (the rest were kept)
    unscanned: int = 0  # in scope, neighbours not looked up yet (scan=False)
    pairs: int = 0  # confirmed pairs
    groups: list[Group] = field(default_factory=list)
    tagged: int = 0
    untagged: int = 0
    hidden: int = 0
    unhidden: int = 0

    @property
    def duplicates(self) -> int:
        """Members that are not keepers."""
        return sum(len(g.members) - 1 for g in self.groups)

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "groups"}
        out["duplicates"] = self.duplicates
        out["groups"] = [g.as_dict() for g in self.groups]
        return out


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        root = self.parent.setdefault(x, x)
        while root != self.parent[root]:
            root = self.parent[root]
        while x != root:  # path compression
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def components(self) -> list[list[int]]:
        out: dict[int, list[int]] = {}
        for x in self.parent:
            out.setdefault(self.find(x), []).append(x)
        return [sorted(c) for c in out.values()]


def groups_of(pairs: Sequence[tuple[int, int]]) -> list[list[int]]:
    """Connected components (of two or more) of an edge list."""
    uf = _UnionFind()
    for a, b in pairs:
        uf.union(a, b)
    return sorted(uf.components(), key=lambda c: c[0])


def keeper_of(ids: Sequence[int], info: dict[int, Any]) -> int:
    """A marked keeper, else the largest in pixels, then the oldest, then the lowest id."""
    marked = [i for i in ids if info[i].marked] or list(ids)
    return min(marked, key=lambda i: (-(info[i].width or 0) * (info[i].height or 0),
                                      _ts(info[i].created_at), i))


def _ts(when: datetime | None) -> float:
    return when.timestamp() if when is not None else float("inf")


def _scope_select(filters: Filters, model: str) -> Any:  # noqa: ANN401 - a Select
    """The assets a run looks at. Those --hide hid take part (a group must still be found
    to --unhide it); those a moderation policy hides only with include_hidden, as in
    searches (the page must not show them)."""
    clauses = where_clauses(filters.replace(include_hidden=True), model)
    if not filters.include_hidden:
        hid = DuplicateHide.__table__.c
        clauses.append(or_(A.hidden.is_(False),
                           exists(select(hid.asset_id).where(hid.asset_id == A.id))))
    return select(A.id).where(*clauses)


def _hash_one(row: tuple[int, str, str, int]) -> tuple[int, str, ImageHashes | str]:
    from assetdb.embedding.batches import decode_file

    asset_id, uri, sha256, size = row
    image = decode_file(Path(uri), HASH_EDGE, (sha256, size))
    if isinstance(image, str):
        return asset_id, uri, image
    try:
        return asset_id, uri, hash_image(image)
    finally:
        image.close()


def backfill(settings: Settings, filters: Filters, model: str, report: DuplicatesReport,
             progress: Progress | None = None) -> None:
    """Hash the assets in scope that have no hash of their current content. A file that
    cannot be read is reported (hash_failures) and left out; the rest go on."""
    with connect(settings) as conn:
        store.make_scope(conn, _scope_select(filters, model))
        todo = store.unhashed(conn)
    if not todo:
        return
    update = progress("hashing", len(todo)) if progress else None
    sha_of = {r[1]: r[2] for r in todo}
    with ThreadPoolExecutor(max_workers=settings.decode_workers) as pool:
        for i in range(0, len(todo), HASH_CHUNK):
            done = list(pool.map(_hash_one, todo[i:i + HASH_CHUNK]))
            good = [(uri, sha_of[uri], h) for _, uri, h in done if not isinstance(h, str)]
            report.hash_failures += [{"uri": uri, "error": h} for _, uri, h in done
                                     if isinstance(h, str)]
            with connect(settings) as conn:
                report.hashed += len(store.store_hashes(conn, good))
            if update:
                update(len(done))


def _scan(settings: Settings, filters: Filters, model: str, k: int,
          report: DuplicatesReport, progress: Progress | None) -> None:
    """Look up the vector neighbours of assets that have none stored; resumable."""
    with connect(settings) as conn:
        stored = schema.read_meta(conn).get(SCAN_META_KEY)
        if stored != str(k):
            store.forget_scan(conn)
            conn.execute(text("INSERT INTO assetdb_meta (key, value) VALUES (:k, :v) "
                              "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"),
                         {"k": SCAN_META_KEY, "v": str(k)})
    with connect(settings) as conn:
        store.make_scope(conn, _scope_select(filters, model))
        todo = store.to_scan(conn)
    if not todo:
        return
    update = progress("neighbours", len(todo)) if progress else None
    for i in range(0, len(todo), SCAN_CHUNK):
        chunk = todo[i:i + SCAN_CHUNK]
        with connect(settings) as conn:  # one commit a chunk: a stop loses one chunk
            store.scan_neighbours(conn, chunk, k, model)
        report.scanned += len(chunk)
        if update:
            update(len(chunk))


def _build_groups(conn: Connection, report: DuplicatesReport, semantic: bool
                  ) -> list[Group]:
    if semantic:
        edges = [(a, b) for a, b, _ in store.semantic_pairs(conn, report.threshold)]
    else:
        assert report.max_distance is not None
        edges = [(a, b) for a, b, _ in store.hash_pairs(conn, report.max_distance)]
    report.pairs = len(edges)
    components = groups_of(edges)
    info = store.members(conn, sorted({i for c in components for i in c}))
    keepers = {c[0]: keeper_of(c, info) for c in components}
    cos = store.cosines(conn, [(m, keepers[c[0]]) for c in components for m in c]) \
        if semantic else {}
    groups = []
    for c in components:
        keeper = keepers[c[0]]
        out = []
        for m in c:
            r, k = info[m], info[keeper]
            bits = distance(ImageHashes(r.phash, r.dhash), ImageHashes(k.phash, k.dhash)) \
                if r.phash is not None and k.phash is not None else None
            if semantic:
                sim = 1.0 if m == keeper else cos.get((m, keeper), 0.0)
            else:
                sim = similarity(bits) if bits is not None else 0.0
            out.append(Member(
                id=m, uri=r.uri, title=r.title, width=r.width, height=r.height,
                bytes=r.bytes, created_at=r.created_at, keeper=m == keeper,
                marked_keeper=bool(r.marked), similarity=round(sim, 4), distance=bits,
                hidden=bool(r.hidden), hidden_as_duplicate=bool(r.dup_hidden)))
        out.sort(key=lambda x: (not x.keeper, -x.similarity, x.id))
        groups.append(Group(keeper, out))
    groups.sort(key=lambda g: (-len(g.members), g.keeper_id))
    return groups


def find_duplicates(
    settings: Settings,
    *,
    filters: Filters | None = None,
    threshold: float | None = None,
    semantic: bool = False,
    neighbours: int = DEFAULT_NEIGHBOURS,
    backfill_hashes: bool = True,
    tag: str | None = None,
    untag: str | None = None,
    hide: bool = False,
    unhide: bool = False,
    save: bool = True,
    scan: bool = True,
    progress: Progress | None = None,
) -> DuplicatesReport:
    """Groups of near-duplicates among the assets that pass the filters (those --hide hid
    included; those moderation hides only with include_hidden), and the actions asked
    for. `save` keeps the groups for assetdb_duplicates(). scan=False (the API: a
    request must stay short) uses only the neighbours stored by earlier runs and the
    hash bands; `unscanned` counts the rest."""
    check_threshold(threshold)
    check_neighbours(neighbours)
    tag, untag = check_tag(tag), check_tag(untag)
    if hide and unhide:
        raise FilterError("--hide and --unhide exclude each other")
    filters = filters or Filters()
    if threshold is None:
        threshold = DEFAULT_SEMANTIC_THRESHOLD if semantic else DEFAULT_THRESHOLD
    report = DuplicatesReport(rule="semantic" if semantic else "hash", threshold=threshold,
                              max_distance=None if semantic else bits_for(threshold),
                              neighbours=neighbours)
    with connect(settings) as conn:
        model = schema.require_meta(conn)["model"]
    if backfill_hashes and not semantic:
        backfill(settings, filters, model, report, progress)
    if scan:
        _scan(settings, filters, model, neighbours, report, progress)
    with connect(settings) as conn:
        report.assets = store.make_scope(conn, _scope_select(filters, model))
        report.unhashed = len(store.unhashed(conn))
        report.unscanned = len(store.to_scan(conn))
        if unhide:
            report.unhidden = store.unhide(conn)
        if untag:
            report.untagged = store.remove_tag_in_scope(conn, untag)
        report.groups = _build_groups(conn, report, semantic)
        others = [(m.id, g.keeper_id) for g in report.groups for m in g.members
                  if not m.keeper]
        if tag:
            report.tagged = store.add_tag(conn, [m for m, _ in others], tag)
        if hide:
            kept_hidden = [g.keeper_id for g in report.groups
                           if g.members[0].hidden_as_duplicate]
            report.unhidden = store.unhide(conn, kept_hidden) if kept_hidden else 0
            report.hidden = store.hide(conn, others)
        if save:
            store.save_groups(conn, [(m.id, g.keeper_id, m.similarity, m.distance)
                                     for g in report.groups for m in g.members],
                              report.rule, threshold)
        if tag or hide or unhide:  # what the members show now
            now = store.members(conn, [m.id for g in report.groups for m in g.members])
            for g in report.groups:
                for m in g.members:
                    m.hidden = bool(now[m.id].hidden)
                    m.hidden_as_duplicate = bool(now[m.id].dup_hidden)
    return report
