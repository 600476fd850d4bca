"""Moderation policies: parsing and validation (TOML or YAML), and the rule score.

A policy is a list of rules. Each rule has a name, texts that describe the restricted
content, optional counter-texts (look-alikes that are fine), a threshold and an action.

The score of an asset for a rule, with v its unit image vector and cos the cosine
similarity:

    score = max_i cos(v, text_i)                               (no counter-texts)
    score = max_i cos(v, text_i) - max_j cos(v, counter_j)     (with counter-texts)

so it lies in [-1, 1] without counter-texts and in [-2, 2] with them, and the threshold
must lie in the same range. An asset is flagged when score >= threshold. Action `flag`
only records the flag; `hide` also hides the asset from search and similar.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assetdb import names
from assetdb.embedding.encoder import Encoder
from assetdb.errors import AssetdbError

ACTIONS = ("flag", "hide")
_POLICY_KEYS = {"name", "description", "rules"}
_RULE_KEYS = {"name", "texts", "counter_texts", "threshold", "action"}


class PolicyError(AssetdbError):
    pass


def check_name(name: str, what: str) -> str:
    return names.check_name(name, what, error=PolicyError)


@dataclass(frozen=True)
class Rule:
    name: str
    texts: tuple[str, ...]
    threshold: float
    action: str = "flag"
    counter_texts: tuple[str, ...] = ()

    def score_range(self) -> tuple[float, float]:
        return (-2.0, 2.0) if self.counter_texts else (-1.0, 1.0)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["texts"], d["counter_texts"] = list(self.texts), list(self.counter_texts)
        return d


@dataclass(frozen=True)
class Policy:
    name: str
    rules: tuple[Rule, ...]
    description: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description,
                "rules": [r.as_dict() for r in self.rules]}


def _texts(raw: Any, where: str, key: str, required: bool) -> tuple[str, ...]:
    if raw is None and not required:
        return ()
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw):
        raise PolicyError(f"{where}: {key} must be a list of strings")
    texts = tuple(t.strip() for t in raw if t.strip())
    if required and not texts:
        raise PolicyError(f"{where}: {key} is empty; give at least one text")
    return texts


def _rule(raw: Any, index: int, source: str) -> Rule:
    where = f"{source}: rule {index + 1}"
    if not isinstance(raw, dict):
        raise PolicyError(f"{where} must be a table/mapping with name, texts, threshold")
    if isinstance(raw.get("name"), str):
        where = f"{source}: rule {raw['name']!r}"
    unknown = sorted(set(raw) - _RULE_KEYS)
    if unknown:
        raise PolicyError(f"{where}: unknown key {unknown[0]!r} (known: "
                          f"{', '.join(sorted(_RULE_KEYS))})")
    if "name" not in raw:
        raise PolicyError(f"{where}: missing name")
    name = check_name(raw["name"], f"{where}: name")
    texts = _texts(raw.get("texts"), where, "texts", required=True)
    counter = _texts(raw.get("counter_texts"), where, "counter_texts", required=False)
    threshold = raw.get("threshold")
    if threshold is None:
        raise PolicyError(f"{where}: missing threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise PolicyError(f"{where}: threshold must be a number, got {threshold!r}")
    action = raw.get("action", "flag")
    if action not in ACTIONS:
        raise PolicyError(f"{where}: action must be one of {', '.join(ACTIONS)}, got {action!r}")
    rule = Rule(name=name, texts=texts, threshold=float(threshold), action=action,
                counter_texts=counter)
    lo, hi = rule.score_range()
    if not lo <= rule.threshold <= hi:
        kind = "with counter-texts" if counter else "without counter-texts"
        raise PolicyError(
            f"{where}: threshold {threshold} is outside the score range [{lo:g}, {hi:g}] of a "
            f"rule {kind}"
        )
    return rule


def parse_policy(data: Any, default_name: str, source: str = "policy") -> Policy:
    """Validate a decoded policy document (from TOML, YAML or the database)."""
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: a policy must be a table/mapping with a 'rules' list")
    unknown = sorted(set(data) - _POLICY_KEYS)
    if unknown:
        raise PolicyError(f"{source}: unknown key {unknown[0]!r} (known: "
                          f"{', '.join(sorted(_POLICY_KEYS))})")
    rules_raw = data.get("rules")
    if not isinstance(rules_raw, list) or not rules_raw:
        raise PolicyError(f"{source}: the policy needs a non-empty 'rules' list")
    rules = tuple(_rule(r, i, source) for i, r in enumerate(rules_raw))
    names = [r.name for r in rules]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise PolicyError(f"{source}: rule name {dupes[0]!r} appears more than once")
    name = check_name(data.get("name") or default_name, f"{source}: policy name")
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise PolicyError(f"{source}: description must be a string")
    return Policy(name=name, rules=rules, description=description)


def load_policy_file(path: Path, name: str | None = None) -> Policy:
    """Read a .toml, .yaml or .yml policy file; any problem is a PolicyError."""
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise PolicyError(f"{path}: a policy file must end in .toml, .yaml or .yml")
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(f"policy file {path} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"cannot read policy file {path}: {exc}") from None
    if suffix == ".toml":
        try:
            data: Any = tomllib.loads(raw)
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(f"{path}: not valid TOML: {exc}") from None
    else:
        import yaml

        try:
            data = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            reason = str(exc).replace("\n", " ")
            raise PolicyError(f"{path}: not valid YAML: {reason}") from None
    policy = parse_policy(data, default_name=path.stem, source=str(path))
    if name:
        policy = Policy(name=check_name(name, "policy name"), rules=policy.rules,
                        description=policy.description)
    return policy


@dataclass
class EncodedRule:
    rule: Rule
    policy: str
    texts: np.ndarray  # (T, D) unit vectors, float64
    counters: np.ndarray | None = field(default=None)  # (C, D) or None


_TEXT_CACHE: dict[tuple[str, tuple[str, ...]], np.ndarray] = {}


def _encode(encoder: Encoder, texts: Sequence[str]) -> np.ndarray:
    # Policies are re-read for every ingest batch: encode each text list once per process.
    key = (encoder.name, tuple(texts))
    if key not in _TEXT_CACHE:
        if len(_TEXT_CACHE) > 256:
            _TEXT_CACHE.clear()
        _TEXT_CACHE[key] = unit(encoder.encode_texts(list(texts)))
    return _TEXT_CACHE[key]


def unit(vectors: np.ndarray) -> np.ndarray:
    """float64 rows of length 1 (stored float32 vectors are only nearly unit length)."""
    v = np.asarray(vectors, dtype=np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def encode_policies(encoder: Encoder, policies: Sequence[Policy]) -> list[EncodedRule]:
    return [
        EncodedRule(rule=r, policy=p.name, texts=_encode(encoder, r.texts),
                    counters=_encode(encoder, r.counter_texts) if r.counter_texts else None)
        for p in policies
        for r in p.rules
    ]


def rule_scores(image_vectors: np.ndarray, encoded: EncodedRule) -> np.ndarray:
    """(N,) scores of N image vectors for one rule (see the module docstring)."""
    images = unit(image_vectors)
    score = (images @ encoded.texts.T).max(axis=1)
    if encoded.counters is not None:
        score = score - (images @ encoded.counters.T).max(axis=1)
    return score


def is_flagged(score: float, threshold: float) -> bool:
    return bool(score >= threshold)
