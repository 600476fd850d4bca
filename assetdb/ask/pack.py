"""The context pack: what `assetdb ask` gives an LLM, built by one function.

The pack is deterministic: the same question, query image, k and filters over the same
catalogue give the same bytes, from the CLI (`--context-only --json`) and from the API
(`context_only=true`), so that any other tool can take the pack and ask its own model.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

# What a source may put in the prompt: enough for the facts a description carries,
# bounded so that one long description cannot crowd out the others.
MAX_DESCRIPTION_CHARS = 4000
MAX_METADATA_KEYS = 20
MAX_METADATA_VALUE_CHARS = 200

INSTRUCTIONS = (
    "Answer the question using only the sources below, which come from an asset "
    "catalogue. Cite each source you use by its asset id in square brackets, e.g. "
    "[asset 12]. If the sources do not answer the question, say so plainly instead of "
    "guessing."
)
NO_IMAGES_NOTE = (
    "Note: no images are attached (this model cannot take images): judge the sources by "
    "their descriptions only."
)


@dataclass(frozen=True)
class QueryImage:
    """The user's image, as the pack names it: the file name it came with and its hash
    (never a local path, so the CLI and the API give the same pack)."""

    name: str
    sha256: str
    mime: str


@dataclass(frozen=True)
class Source:
    id: int
    uri: str
    title: str | None
    similarity: float
    kind: str | None
    mime: str | None
    tags: list[str]
    description: str | None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ContextPack:
    question: str
    mode: str  # "image" (the user's image), "asset" (a catalogued one) or "text"
    k: int
    filters: dict[str, Any]
    image: QueryImage | None
    asset_id: int | None
    sources: list[Source]

    def prompt(self, *, with_images: bool = True) -> str:
        return build_prompt(self, with_images=with_images)

    def images(self) -> list[str]:
        """What is attached, in order: the user's image (by name), then each source's
        image (its catalogue path)."""
        out = [f"upload:{self.image.name}"] if self.image else []
        return out + [s.uri for s in self.sources]

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["prompt"] = self.prompt()
        data["images"] = self.images()
        return data

    def to_json(self) -> str:
        """The pack's one serialisation: sorted keys, no floating whitespace."""
        return json.dumps(self.as_dict(), sort_keys=True, indent=2, ensure_ascii=False,
                          default=str) + "\n"


def clip_text(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def chosen_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """The scalar business fields, by name, bounded (nested values stay out)."""
    out: dict[str, Any] = {}
    for key in sorted(metadata)[:MAX_METADATA_KEYS]:
        value = metadata[key]
        if isinstance(value, str):
            out[key] = clip_text(value, MAX_METADATA_VALUE_CHARS)
        elif isinstance(value, bool | int | float) or value is None:
            out[key] = value
    return out


def _value(value: Any) -> str:  # noqa: ANN401
    return value if isinstance(value, str) else json.dumps(value)


def _source_block(s: Source) -> str:
    lines = [f"[asset {s.id}] {s.title or '(untitled)'} (similarity {s.similarity:.3f})"]
    if s.tags:
        lines.append("tags: " + ", ".join(s.tags))
    if s.metadata:
        lines.append("metadata: " + "; ".join(f"{k}={_value(v)}" for k, v in s.metadata.items()))
    description = (s.description or "").strip()
    lines.append("description: " + (clip_text(description, MAX_DESCRIPTION_CHARS)
                                    if description else "(none)"))
    return "\n".join(lines)


def build_prompt(pack: ContextPack, *, with_images: bool = True) -> str:
    parts = [INSTRUCTIONS, f"Question: {pack.question.strip()}"]
    if pack.mode == "asset":
        parts.append(f"The question is about the catalogue asset [asset {pack.asset_id}]; "
                     "the sources are it and the assets most like it.")
    elif pack.mode == "image":
        parts.append("The question is about the user's image; the sources are the "
                     "catalogue assets that look most like it.")
    else:
        parts.append("The sources are the catalogue assets that best match the question.")
    if with_images:
        order = (["the user's image"] if pack.image else []) + [
            f"[asset {s.id}]" for s in pack.sources]
        parts.append("Images attached, in order: "
                     + "; ".join(f"{i}. {what}" for i, what in enumerate(order, 1)) + ".")
    else:
        parts.append(NO_IMAGES_NOTE)
    parts.append("Sources:\n\n" + "\n\n".join(_source_block(s) for s in pack.sources))
    return "\n\n".join(parts) + "\n"
