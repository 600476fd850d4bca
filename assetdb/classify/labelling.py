"""Classification and moderation services: zero-shot labels for one file or the
catalogue, saved label sets, moderation policies (score, apply, calibrate).

Catalogue runs happen in one transaction: bad input raises before anything is written,
and a dry run (or moderation without apply) writes nothing at all."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection

from assetdb.classify import store
from assetdb.classify.one_image import classify_image
from assetdb.classify.policy import (
    Policy,
    PolicyError,
    check_name,
    encode_policies,
    is_flagged,
    rule_scores,
)
from assetdb.classify.store import SavedLabelSet
from assetdb.classify.zeroshot import (
    DEFAULT_TEMPLATES,
    check_labels,
    check_templates,
    probabilities,
    text_prototypes,
)
from assetdb.config import Settings
from assetdb.db import schema
from assetdb.db.engine import connect
from assetdb.db.frames import frame_vectors
from assetdb.embedding.encoder import Encoder
from assetdb.embedding.images import load_image
from assetdb.errors import AssetdbError
from assetdb.search.filters import Filters

Progress = Callable[[int], None]
DEFAULT_FIELD = "label"


def read_label_file(path: Path) -> list[str]:
    """One label per line; blank lines and lines starting with '#' are skipped."""
    try:
        raw = Path(path).expanduser().read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AssetdbError(f"label file {path} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AssetdbError(f"cannot read label file {path}: {exc}") from None
    lines = [line.strip() for line in raw.splitlines()]
    return check_labels([x for x in lines if x and not x.startswith("#")])


def label_results(probs: np.ndarray, labels: Sequence[str]) -> list[dict[str, Any]]:
    """Per row of probabilities: the top label, its probability and the top 3."""
    out = []
    for row in probs:
        order = np.argsort(-row, kind="stable")[:3]
        top3 = [{"label": labels[i], "probability": round(float(row[i]), 6)} for i in order]
        out.append({"label": top3[0]["label"], "probability": top3[0]["probability"],
                    "top3": top3})
    return out


def classify_file(
    encoder: Encoder, path: Path, labels: Sequence[str],
    templates: Sequence[str] = DEFAULT_TEMPLATES,
) -> list[dict[str, Any]]:
    """Probabilities of every label for one image file, highest first; stores nothing.
    Labels and templates are checked before the image is read."""
    labels, templates = check_labels(labels), check_templates(templates)
    image = load_image(Path(path).expanduser(), encoder.image_size)
    return classify_image(encoder, image, labels, templates)


@dataclass
class ClassifyReport:
    field: str
    labels: list[str]
    templates: list[str]
    dry_run: bool
    classified: int = 0
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    results: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _model(conn: Any, encoder: Encoder) -> str:
    meta = schema.require_meta(conn)
    schema.check_model(meta, encoder.name, encoder.dimension)
    return meta["model"]


def classify_catalogue(
    settings: Settings,
    encoder: Encoder,
    *,
    labels: Sequence[str],
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    field: str = DEFAULT_FIELD,
    filters: Filters | None = None,
    dry_run: bool = False,
    keep_results: bool = True,
    progress: Progress | None = None,
    on_total: Callable[[int], None] | None = None,
) -> ClassifyReport:
    """Classify every embedded asset that passes the filters; store the result under
    classifications.labels[field] unless dry_run. keep_results=False keeps only the counts in the
    report (for large catalogues)."""
    labels, templates = check_labels(labels), check_templates(templates)
    check_name(field, "field name")
    filters = filters or Filters()
    report = ClassifyReport(field=field, labels=labels, templates=templates, dry_run=dry_run)
    counts: Counter[str] = Counter()
    prototypes = text_prototypes(encoder, labels, templates)
    with connect(settings) as conn:
        model = _model(conn, encoder)
        if on_total:
            on_total(store.count_assets(conn, filters, model))
        for ids, uris, vectors in store.iter_vectors(conn, filters, model):
            results = label_results(probabilities(vectors, prototypes, encoder.scoring),
                                    labels)
            if not dry_run:
                store.write_labels(conn, field, ids, results)
            for asset_id, uri, result in zip(ids, uris, results, strict=True):
                counts[result["label"]] += 1
                if keep_results:
                    report.results.append({"id": asset_id, "uri": uri, **result})
            report.classified += len(ids)
            if progress:
                progress(len(ids))
    report.counts = {label: counts.get(label, 0) for label in labels}
    return report


def classify_with_set(
    settings: Settings, encoder: Encoder, name: str, **kwargs: Any
) -> ClassifyReport:
    """Apply a saved label set to the catalogue (kwargs as for classify_catalogue)."""
    with connect(settings) as conn:
        s = store.get_label_set(conn, name)
    return classify_catalogue(settings, encoder, labels=s.labels, templates=s.templates,
                              field=s.field, **kwargs)


# --- label sets ------------------------------------------------------------------------


def add_label_set(
    settings: Settings, name: str, labels: Sequence[str],
    templates: Sequence[str] = DEFAULT_TEMPLATES, *, field: str | None = None,
    enabled: bool = True, replace: bool = False,
) -> SavedLabelSet:
    s = SavedLabelSet(name=check_name(name, "label set name"), field=field or name,
                      labels=tuple(check_labels(labels)),
                      templates=tuple(check_templates(templates)), enabled=enabled)
    with connect(settings) as conn:
        schema.require_meta(conn)
        store.save_label_set(conn, s, replace=replace)
    return s


def list_label_sets(settings: Settings) -> list[SavedLabelSet]:
    with connect(settings) as conn:
        schema.require_meta(conn)
        return store.list_label_sets(conn)


def remove_label_set(settings: Settings, name: str) -> None:
    with connect(settings) as conn:
        store.remove_label_set(conn, name)


def enable_label_set(settings: Settings, name: str, enabled: bool) -> None:
    with connect(settings) as conn:
        store.enable_label_set(conn, name, enabled)


# --- moderation policies -----------------------------------------------------------------


def save_policy(settings: Settings, policy: Policy, *, enabled: bool = True,
                replace: bool = False) -> None:
    with connect(settings) as conn:
        schema.require_meta(conn)
        store.save_policy(conn, policy, enabled=enabled, replace=replace)


def list_policies(settings: Settings) -> list[tuple[Policy, bool]]:
    with connect(settings) as conn:
        schema.require_meta(conn)
        return store.list_policies(conn)


def get_policy(settings: Settings, name: str) -> Policy:
    with connect(settings) as conn:
        return store.get_policy(conn, name)


def remove_policy(settings: Settings, name: str) -> None:
    with connect(settings) as conn:
        store.remove_policy(conn, name)


def enable_policy(settings: Settings, name: str, enabled: bool) -> None:
    with connect(settings) as conn:
        store.enable_policy(conn, name, enabled)


def stored_policies(settings: Settings) -> list[Policy]:
    """The enabled stored policies (what ingest applies)."""
    with connect(settings) as conn:
        schema.require_meta(conn)
        policies = [p for p, _ in store.list_policies(conn, enabled_only=True)]
    if not policies:
        raise PolicyError("no enabled policy is stored: give --policy FILE, or store one "
                          "with `assetdb policies add FILE`")
    return policies


@dataclass
class RuleCount:
    policy: str
    rule: str
    action: str
    threshold: float
    scored: int = 0
    flagged: int = 0


@dataclass
class ModerationReport:
    applied: bool
    scored: int = 0
    hidden: int = 0  # scored assets flagged by at least one 'hide' rule
    rules: list[RuleCount] = field(default_factory=list)
    flagged: list[dict[str, Any]] = field(default_factory=list)  # one row per (asset, rule)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def moderation_results(
    vectors: np.ndarray, encoded: Sequence[Any]
) -> tuple[list[dict[str, dict[str, Any]]], np.ndarray]:
    """Per asset {rule: {score, flagged, threshold, action, policy}}, and the (R, N) scores."""
    scores = np.stack([rule_scores(vectors, e) for e in encoded]) if encoded else np.zeros((0, 0))
    out: list[dict[str, dict[str, Any]]] = [{} for _ in range(len(vectors))]
    for e, row in zip(encoded, scores, strict=True):
        for i, score in enumerate(row):
            out[i][e.rule.name] = {
                "score": float(score),  # full precision: thresholds compare exactly
                "flagged": is_flagged(float(score), e.rule.threshold),
                "threshold": e.rule.threshold,
                "action": e.rule.action,
                "policy": e.policy,
            }
    return out, scores


def moderation_with_moments(
    conn: Connection, ids: Sequence[int], vectors: np.ndarray, encoded: Sequence[Any],
    model: str,
) -> list[dict[str, dict[str, Any]]]:
    """moderation_results, where a video or document scores as its worst moment: each
    rule keeps the highest score of the asset's vector and its frames (or pages), so a
    video is flagged when any frame is; `at` names that frame's seconds or page."""
    results, _ = moderation_results(vectors, encoded)
    frames = frame_vectors(conn, list(ids), model) if encoded else {}
    for i, asset_id in enumerate(ids):
        moments = frames.get(asset_id)
        if not moments:
            continue
        per_frame, scores = moderation_results(np.stack([v for _, _, v in moments]), encoded)
        for r, e in enumerate(encoded):
            j = int(np.argmax(scores[r]))
            if scores[r, j] > results[i][e.rule.name]["score"]:
                seconds, page, _ = moments[j]
                results[i][e.rule.name] = {**per_frame[j][e.rule.name],
                                           "at": {"seconds": seconds, "page": page}}
    return results


def _check_rule_names(policies: Sequence[Policy]) -> None:
    seen: dict[str, str] = {}
    for p in policies:
        for r in p.rules:
            if r.name in seen:
                raise PolicyError(f"rule {r.name!r} is in both policy {seen[r.name]!r} and "
                                  f"{p.name!r}; results are stored by rule name")
            seen[r.name] = p.name


def moderate(
    settings: Settings,
    encoder: Encoder,
    policies: Sequence[Policy],
    *,
    filters: Filters | None = None,
    apply: bool = False,
    progress: Progress | None = None,
    on_total: Callable[[int], None] | None = None,
) -> ModerationReport:
    """Score every embedded asset (hidden ones too) against every rule; with apply, store
    the scores and flags under classifications.moderation and set assets.hidden."""
    if not policies:
        raise PolicyError("no policy to apply")
    _check_rule_names(policies)
    filters = (filters or Filters()).replace(include_hidden=True)
    encoded = encode_policies(encoder, policies)
    report = ModerationReport(applied=apply, rules=[
        RuleCount(policy=e.policy, rule=e.rule.name, action=e.rule.action,
                  threshold=e.rule.threshold) for e in encoded
    ])
    with connect(settings) as conn:
        model = _model(conn, encoder)
        if on_total:
            on_total(store.count_assets(conn, filters, model))
        for ids, uris, vectors in store.iter_vectors(conn, filters, model):
            results = moderation_with_moments(conn, ids, vectors, encoded, model)
            if apply:
                store.write_moderation(conn, ids, results)
            for asset_id, uri, result in zip(ids, uris, results, strict=True):
                hide = False
                for count in report.rules:
                    r = result[count.rule]
                    count.scored += 1
                    if r["flagged"]:
                        count.flagged += 1
                        hide = hide or r["action"] == "hide"
                        report.flagged.append({"id": asset_id, "uri": uri, "rule": count.rule,
                                               "score": r["score"], "action": r["action"]})
                report.hidden += hide
            report.scored += len(ids)
            if progress:
                progress(len(ids))
    return report


QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)


def calibrate(
    settings: Settings,
    encoder: Encoder,
    policies: Sequence[Policy],
    *,
    filters: Filters | None = None,
    bins: int = 10,
) -> list[dict[str, Any]]:
    """Per rule: the score distribution over the catalogue (quantiles, a histogram) and
    how many assets its current threshold would flag. Writes nothing."""
    if not 1 <= bins <= 100:
        raise AssetdbError("bins must lie between 1 and 100")
    if not policies:
        raise PolicyError("no policy to calibrate")
    _check_rule_names(policies)
    filters = (filters or Filters()).replace(include_hidden=True)
    encoded = encode_policies(encoder, policies)
    chunks: list[np.ndarray] = []
    with connect(settings) as conn:
        model = _model(conn, encoder)
        for _, _, vectors in store.iter_vectors(conn, filters, model):
            chunks.append(np.stack([rule_scores(vectors, e) for e in encoded]))
    scores = np.concatenate(chunks, axis=1) if chunks else np.zeros((len(encoded), 0))
    out = []
    for e, row in zip(encoded, scores, strict=True):
        entry: dict[str, Any] = {
            "policy": e.policy, "rule": e.rule.name, "action": e.rule.action,
            "threshold": e.rule.threshold, "scored": int(row.size),
            "flagged": int(np.count_nonzero(row >= e.rule.threshold)),
            "quantiles": {}, "histogram": [],
        }
        if row.size:
            entry["quantiles"] = {f"p{round(q * 100)}": float(np.quantile(row, q))
                                  for q in QUANTILES}
            counts, edges = np.histogram(row, bins=bins)
            entry["histogram"] = [
                {"from": float(lo), "to": float(hi), "count": int(n)}
                for lo, hi, n in zip(edges[:-1], edges[1:], counts, strict=True)
            ]
        out.append(entry)
    return out
