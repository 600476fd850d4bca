"""The data and the filter cases of the vector-search benchmark (issue 15, item 4).

Clustered 512-d unit vectors (rows/100 random centres, each point's cosine to its centre
about 0.7), 100 queries drawn from the same clusters, and the filters a DAM catalogue
meets, each with the share of rows it keeps:

- `s50`, `s10`, `s1`, `s0.1`: a tag on 50% .. 0.1% of the rows, at random (independent of
  the vectors);
- `anti30`, `anti10`: a tag on whole clusters holding 30% / 10% of the rows, none of them a
  query's own cluster, so every true neighbour lies far from its query;
- `meta5`: `metadata @> {"brand": "acme"}`, 5% of the rows (20 brands in all);
- `d10+2024`: a tag on 10% of the rows, 80% of them captured in 2024, with the date range
  2024: about 8.3% of the rows, where the planner's independence assumption estimates 1.7%;
- `late0.1`: a tag on 0.1% of the rows, added after ANALYZE (the statistics do not see it).

Ground truth: exact cosine top-k in numpy over the rows each filter keeps.

`families` > 0 gives the centres structure, as a real embedding space has (a dog's nearest
other cluster is a wolf's, not a random one): each centre is drawn around one of
`families` family centres (cosine about 0.7 to it, about 0.5 between sibling centres).
By default (0) the centres are independent random directions, nearly orthogonal, so a
query's nearest rows outside its own cluster are picked by noise alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

DIM = 512
K = 10
POINTS_PER_CLUSTER = 100
RANDOM_TAGS = {"s50": 0.5, "s10": 0.1, "s1": 0.01, "s0.1": 0.001}
ANTI_TAGS = {"anti30": 0.3, "anti10": 0.1}
BRANDS = 20
START = datetime(2020, 1, 1, tzinfo=UTC)
YEARS = 6
LATE_TAG = "late0.1"


@dataclass
class Dataset:
    vectors: np.ndarray  # (rows, DIM) float32, unit length
    cluster: np.ndarray  # (rows,) the centre each row was drawn around
    queries: np.ndarray  # (queries, DIM)
    query_cluster: np.ndarray
    tags: list[list[str]]  # per row, what COPY writes (LATE_TAG comes later)
    late: np.ndarray  # row indexes that get LATE_TAG after ANALYZE
    brand: np.ndarray  # per row, 0..BRANDS-1; 0 is "acme" (5%)
    captured: np.ndarray  # per row, seconds since START

    @property
    def rows(self) -> int:
        return len(self.vectors)


@dataclass(frozen=True)
class Case:
    name: str
    filters: dict[str, Any]  # keyword arguments of assetdb.search.filters.Filters
    mask: np.ndarray | None  # the rows it keeps; None: all

    @property
    def share(self) -> float:
        return 1.0 if self.mask is None else float(self.mask.mean())


def brand_name(i: int) -> str:
    return "acme" if i == 0 else f"brand{i:02d}"


def generate(rows: int, queries: int = 100, seed: int = 0, families: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    n_centres = max(1, rows // POINTS_PER_CLUSTER)
    centres = rng.standard_normal((n_centres, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    if families:  # drawn after the default centres, so families=0 keeps its data
        tops = rng.standard_normal((families, DIM)).astype(np.float32)
        tops /= np.linalg.norm(tops, axis=1, keepdims=True)
        family = rng.integers(0, families, n_centres)
        centres = tops[family] * np.float32(0.7) + centres * np.float32(0.714)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    spread = np.float32(1.0 / np.sqrt(DIM))

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        out = np.empty((n, DIM), dtype=np.float32)
        which = rng.integers(0, n_centres, n)
        for i in range(0, n, 50_000):
            m = min(50_000, n - i)
            pts = centres[which[i : i + m]] + rng.standard_normal((m, DIM), np.float32) * spread
            out[i : i + m] = pts / np.linalg.norm(pts, axis=1, keepdims=True)
        return out, which

    vectors, cluster = draw(rows)
    qvecs, qcluster = draw(queries)

    tags: list[list[str]] = [[] for _ in range(rows)]
    for tag, share in RANDOM_TAGS.items():
        for r in rng.permutation(rows)[: max(K, round(rows * share))]:
            tags[r].append(tag)
    # Whole clusters, never a query's own: the true neighbours are all far away.
    free = rng.permutation(np.setdiff1d(np.arange(n_centres), np.unique(qcluster)))
    sizes = np.bincount(cluster, minlength=n_centres)
    for tag, share in ANTI_TAGS.items():
        total, picked = 0, []
        for c in free:
            if total >= rows * share:
                break
            picked.append(c)
            total += sizes[c]
        chosen = np.array(picked)
        for r in np.flatnonzero(np.isin(cluster, chosen)):
            tags[r].append(tag)
    # Dates: uniform over six years; "d10" mostly on rows captured in 2024.
    span = YEARS * 365 * 86400
    captured = rng.integers(0, span, rows)
    y2024 = _year_bounds(2024)
    in_2024 = np.flatnonzero((captured >= y2024[0]) & (captured < y2024[1]))
    out_2024 = np.flatnonzero((captured < y2024[0]) | (captured >= y2024[1]))
    n_d10 = round(rows * 0.1)
    d10 = np.concatenate([rng.choice(in_2024, min(len(in_2024), round(n_d10 * 0.8)), False),
                          rng.choice(out_2024, n_d10 - min(len(in_2024), round(n_d10 * 0.8)),
                                     False)])
    for r in d10:
        tags[r].append("d10")
    brand = rng.integers(1, BRANDS, rows)
    brand[rng.permutation(rows)[: round(rows * 0.05)]] = 0
    late = rng.permutation(rows)[: max(K, round(rows * 0.001))]
    return Dataset(vectors, cluster, qvecs, qcluster, tags, np.sort(late), brand, captured)


def _year_bounds(year: int) -> tuple[int, int]:
    lo = datetime(year, 1, 1, tzinfo=UTC) - START
    hi = datetime(year + 1, 1, 1, tzinfo=UTC) - START
    return int(lo.total_seconds()), int(hi.total_seconds())


def captured_at(seconds: int) -> datetime:
    return START + timedelta(seconds=int(seconds))


def cases(data: Dataset) -> list[Case]:
    has = _tag_masks(data)
    y0, y1 = _year_bounds(2024)
    in_2024 = (data.captured >= y0) & (data.captured < y1)
    out = [Case("none", {}, None)]
    out += [Case(t, {"tags_all": [t]}, has[t]) for t in (*RANDOM_TAGS, *ANTI_TAGS)]
    out.append(Case("meta5", {"metadata": {"brand": "acme"}}, data.brand == 0))
    out.append(Case("d10+2024", {"tags_all": ["d10"], "captured_after": captured_at(y0),
                                 "captured_before": captured_at(y1 - 1)},
                    has["d10"] & in_2024))
    late = np.zeros(data.rows, dtype=bool)
    late[data.late] = True
    out.append(Case(LATE_TAG, {"tags_all": [LATE_TAG]}, late))
    return out


def _tag_masks(data: Dataset) -> dict[str, np.ndarray]:
    names = [*RANDOM_TAGS, *ANTI_TAGS, "d10"]
    masks = {t: np.zeros(data.rows, dtype=bool) for t in names}
    for r, row_tags in enumerate(data.tags):
        for t in row_tags:
            masks[t][r] = True
    return masks


def ground_truth(data: Dataset, case_list: list[Case], k: int = K) -> dict[str, np.ndarray]:
    """Exact top-k row indexes per query for each case (cosine = dot on unit vectors)."""
    scores = np.empty((len(data.queries), data.rows), dtype=np.float32)
    for i in range(0, data.rows, 100_000):
        scores[:, i : i + 100_000] = data.queries @ data.vectors[i : i + 100_000].T
    out = {}
    for case in case_list:
        s = scores if case.mask is None else np.where(case.mask, scores, -np.inf)
        top = np.argpartition(-s, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(s, top, axis=1), axis=1)
        out[case.name] = np.take_along_axis(top, order, axis=1)
    return out


def clustered(rows: int, queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Just the vectors and the queries (benchmarks/index_sizing.py)."""
    data = generate(rows, queries, seed)
    return data.vectors, data.queries


def own_cluster_share(data: Dataset, truth: np.ndarray) -> float:
    """The share of the true neighbours that lie in their query's own cluster. The others
    are points of other clusters that are nearest only by the noise of this generator
    (cosine about 0.15-0.2 against a crowd at 0 +- 0.044): no graph or list structure
    leads to them, so an index walk finds them only by luck and an exact scan is the only
    way to be sure of them. Recall on the index plan is close to this share."""
    return float((data.cluster[truth] == data.query_cluster[:, None]).mean())

