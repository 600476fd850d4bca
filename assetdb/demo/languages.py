"""The shapes domain's captions in other languages, from word tables (no network, no
machine translation): English, French, German, Spanish, Italian, Portuguese, Russian and
Chinese. Each language knows its nouns' genders and the adjective forms that agree
with them, so every caption is grammatical ("une petite étoile rouge", "eine rote Raute",
"красная звезда", "一个红色的圆形").

Caption forms are keyed like the English ones (`FORMS`), so an English caption and its
translations can be paired for distilling a multilingual text encoder.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from assetdb.demo.shapes import COLORS, SHAPES, SIZES

# English caption forms (shapes.CAPTION_FORMS' templates) by key.
FORMS: dict[str, str] = {
    "size_color_shape_bg": "a {size} {color} {shape} on a {background} background",
    "color_shape_bg": "a {color} {shape} on a {background} background",
    "size_color_shape": "a {size} {color} {shape}",
    "color_shape": "a {color} {shape}",
    "photo_color_shape": "a photo of a {color} {shape}.",
    "photo_shape": "a photo of a {shape}.",
    "shape": "a {shape}",
    "size_shape": "a {size} {shape}",
}


@dataclass(frozen=True)
class Words:
    shape: str
    color: str | None = None
    size: str | None = None
    background: str | None = None


Grammar = Callable[[str, Words], str]  # (form key, words) -> caption


def _fr(form: str, w: Words) -> str:
    nouns = {"circle": ("cercle", "m"), "square": ("carré", "m"), "triangle": ("triangle", "m"),
             "star": ("étoile", "f"), "cross": ("croix", "f"), "diamond": ("losange", "m")}
    colours = {"red": ("rouge", "rouge"), "green": ("vert", "verte"), "blue": ("bleu", "bleue"),
               "yellow": ("jaune", "jaune"), "purple": ("violet", "violette"),
               "orange": ("orange", "orange"), "white": ("blanc", "blanche"),
               "black": ("noir", "noire")}
    sizes = {"small": ("petit", "petite"), "large": ("grand", "grande")}
    noun, g = nouns[w.shape]
    f = g == "f"
    art = "une" if f else "un"
    col = colours[w.color][f] if w.color else ""
    size = sizes[w.size][f] if w.size else ""
    phrase = " ".join(x for x in (size, noun, col) if x)
    bg = f" sur fond {colours[w.background][0]}" if w.background else ""
    if form.startswith("photo"):
        return f"une photo d'{art} {phrase}."
    return f"{art} {phrase}{bg}"


def _de(form: str, w: Words) -> str:
    nouns = {"circle": ("Kreis", "m"), "square": ("Quadrat", "n"), "triangle": ("Dreieck", "n"),
             "star": ("Stern", "m"), "cross": ("Kreuz", "n"), "diamond": ("Raute", "f")}
    stems = {"red": "rot", "green": "grün", "blue": "blau", "yellow": "gelb",
             "purple": "violett", "orange": "orangefarben", "white": "weiß", "black": "schwarz"}
    sizes = {"small": "klein", "large": "groß"}
    noun, g = nouns[w.shape]
    photo = form.startswith("photo")
    # Mixed declension after ein/eine (nominative) and einem/einer (dative, after "von").
    ending = "en" if photo else {"m": "er", "n": "es", "f": "e"}[g]
    art = ("einer" if g == "f" else "einem") if photo else ("eine" if g == "f" else "ein")
    adjs = [sizes[w.size] + ending] if w.size else []
    if w.color:
        adjs.append(stems[w.color] + ending)
    phrase = " ".join([art, *adjs, noun])
    bg = f" auf {stems[w.background]}em Hintergrund" if w.background else ""
    return f"ein Foto von {phrase}." if photo else phrase + bg


def _romance(nouns: dict[str, tuple[str, str]], colours: dict[str, tuple[str, str]],
             sizes: dict[str, tuple[str, str]], articles: tuple[str, str], photo: str,
             on_bg: str, size_first: bool) -> Grammar:
    def grammar(form: str, w: Words) -> str:
        noun, g = nouns[w.shape]
        f = g == "f"
        art = articles[f]
        col = colours[w.color][f] if w.color else ""
        size = sizes[w.size][f] if w.size else ""
        words = [size, noun, col] if size_first else [noun, col, size]
        phrase = " ".join(x for x in words if x)
        if form.startswith("photo"):
            return f"{photo} {art} {phrase}."
        bg = f" {on_bg} {colours[w.background][0]}" if w.background else ""
        return f"{art} {phrase}{bg}"

    return grammar


_es = _romance(
    {"circle": ("círculo", "m"), "square": ("cuadrado", "m"), "triangle": ("triángulo", "m"),
     "star": ("estrella", "f"), "cross": ("cruz", "f"), "diamond": ("rombo", "m")},
    {"red": ("rojo", "roja"), "green": ("verde", "verde"), "blue": ("azul", "azul"),
     "yellow": ("amarillo", "amarilla"), "purple": ("morado", "morada"),
     "orange": ("naranja", "naranja"), "white": ("blanco", "blanca"),
     "black": ("negro", "negra")},
    {"small": ("pequeño", "pequeña"), "large": ("grande", "grande")},
    ("un", "una"), "una foto de", "sobre fondo", size_first=False)
_it = _romance(
    {"circle": ("cerchio", "m"), "square": ("quadrato", "m"), "triangle": ("triangolo", "m"),
     "star": ("stella", "f"), "cross": ("croce", "f"), "diamond": ("rombo", "m")},
    {"red": ("rosso", "rossa"), "green": ("verde", "verde"), "blue": ("blu", "blu"),
     "yellow": ("giallo", "gialla"), "purple": ("viola", "viola"),
     "orange": ("arancione", "arancione"), "white": ("bianco", "bianca"),
     "black": ("nero", "nera")},
    {"small": ("piccolo", "piccola"), "large": ("grande", "grande")},
    ("un", "una"), "una foto di", "su sfondo", size_first=True)
_pt = _romance(
    {"circle": ("círculo", "m"), "square": ("quadrado", "m"), "triangle": ("triângulo", "m"),
     "star": ("estrela", "f"), "cross": ("cruz", "f"), "diamond": ("losango", "m")},
    {"red": ("vermelho", "vermelha"), "green": ("verde", "verde"), "blue": ("azul", "azul"),
     "yellow": ("amarelo", "amarela"), "purple": ("roxo", "roxa"),
     "orange": ("laranja", "laranja"), "white": ("branco", "branca"),
     "black": ("preto", "preta")},
    {"small": ("pequeno", "pequena"), "large": ("grande", "grande")},
    ("um", "uma"), "uma foto de", "sobre fundo", size_first=True)


def _ru(form: str, w: Words) -> str:
    # (nominative, genitive, gender)
    nouns = {"circle": ("круг", "круга", "m"), "square": ("квадрат", "квадрата", "m"),
             "triangle": ("треугольник", "треугольника", "m"),
             "star": ("звезда", "звезды", "f"), "cross": ("крест", "креста", "m"),
             "diamond": ("ромб", "ромба", "m")}
    # stem, hard (ый) or soft (ий) adjective
    colours = {"red": ("красн", "ый"), "green": ("зелён", "ый"), "blue": ("син", "ий"),
               "yellow": ("жёлт", "ый"), "purple": ("фиолетов", "ый"),
               "orange": ("оранжев", "ый"), "white": ("бел", "ый"), "black": ("чёрн", "ый")}
    endings = {  # (nominative m, nominative f, genitive m, genitive f, prepositional m)
        "ый": ("ый", "ая", "ого", "ой", "ом"), "ий": ("ий", "яя", "его", "ей", "ем")}
    sizes = {"small": ("маленький", "маленькая", "маленького", "маленькой"),
             "large": ("большой", "большая", "большого", "большой")}
    nom, gen, g = nouns[w.shape]
    photo = form.startswith("photo")
    slot = (2 if photo else 0) + (g == "f")
    words = []
    if w.size:
        words.append(sizes[w.size][slot])
    if w.color:
        stem, kind = colours[w.color]
        words.append(stem + endings[kind][slot])
    words.append(gen if photo else nom)
    phrase = " ".join(words)
    if photo:
        return f"фото {phrase}."
    if w.background:
        stem, kind = colours[w.background]
        phrase += f" на {stem}{endings[kind][4]} фоне"
    return phrase


def _zh(form: str, w: Words) -> str:
    nouns = {"circle": "圆形", "square": "正方形", "triangle": "三角形", "star": "星形",
             "cross": "十字", "diamond": "菱形"}
    colours = {"red": "红色", "green": "绿色", "blue": "蓝色", "yellow": "黄色",
               "purple": "紫色", "orange": "橙色", "white": "白色", "black": "黑色"}
    sizes = {"small": "小", "large": "大"}
    thing = nouns[w.shape]
    if w.color:
        thing = f"{colours[w.color]}的{thing}"
    if w.size:
        thing = f"{sizes[w.size]}{thing}" if not w.color else f"{sizes[w.size]}的{thing}"
    if form.startswith("photo"):
        return f"一张{thing}的照片。"
    if w.background:
        return f"{colours[w.background]}背景上的一个{thing}"
    return f"一个{thing}"


def _en(form: str, w: Words) -> str:
    return FORMS[form].format(shape=w.shape, color=w.color, size=w.size,
                              background=w.background)


GRAMMARS: dict[str, Grammar] = {"en": _en, "fr": _fr, "de": _de, "es": _es, "it": _it,
                                "pt": _pt, "ru": _ru, "zh": _zh}
LANGUAGE_NAMES = {"en": "English", "fr": "French", "de": "German", "es": "Spanish",
                  "it": "Italian", "pt": "Portuguese", "ru": "Russian", "zh": "Chinese"}
LANGUAGES = tuple(GRAMMARS)


def caption(language: str, form: str, shape: str, color: str | None = None,
            size: str | None = None, background: str | None = None) -> str:
    if language not in GRAMMARS:
        raise KeyError(f"no word table for language {language!r} "
                       f"(have: {', '.join(LANGUAGES)})")
    needs = FORMS[form]
    words = Words(shape, color if "{color}" in needs else None,
                  size if "{size}" in needs else None,
                  background if "{background}" in needs else None)
    return GRAMMARS[language](form, words)


def color_query(language: str, color: str, shape: str) -> str:
    """The search query "a {colour} {shape}" in a language."""
    return caption(language, "color_shape", shape, color)


def shape_prompts(language: str, shape: str) -> list[str]:
    """Zero-shot prompts for a shape in a language ("a photo of a star.", "a star")."""
    return [caption(language, "photo_shape", shape), caption(language, "shape", shape)]


# (colour, shape) pairs never shown to the text distillation: the per-language bars are
# measured on them, so they test composition, not memory. One per colour, every shape.
HELD_OUT_COMBOS = tuple((color, SHAPES[i % len(SHAPES)]) for i, color in enumerate(COLORS))


def translation_rows(languages: Sequence[str] = LANGUAGES) -> Iterator[dict[str, str]]:
    """Every caption of the domain with its translations: {english, translation,
    language, combo}; English itself is a language (the student must keep it)."""
    for form, template in FORMS.items():
        for shape in SHAPES:
            for color in (COLORS if "{color}" in template else [None]):
                for size in (SIZES if "{size}" in template else [None]):
                    backgrounds = ([c for c in COLORS if c != color]
                                   if "{background}" in template else [None])
                    for background in backgrounds:
                        english = caption("en", form, shape, color, size, background)
                        for lang in languages:
                            yield {"english": english, "language": lang,
                                   "translation": caption(lang, form, shape, color, size,
                                                          background),
                                   "combo": f"{color or '-'}/{shape}"}


def write_translation_pairs(path: Path, languages: Sequence[str] = LANGUAGES, *,
                            held_out: Sequence[tuple[str, str]] = HELD_OUT_COMBOS,
                            sample: float = 1.0, seed: int = 0) -> Path:
    """A JSONL pairs file for `assetdb finetune --distill-text`, without the held-out
    (colour, shape) pairs; `sample` < 1 keeps that share of the rows with a background."""
    rng = random.Random(seed)
    skip = {f"{c}/{s}" for c, s in held_out}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for row in translation_rows(languages):
            if row["combo"] in skip:
                continue
            if sample < 1 and " background" in row["english"] and rng.random() > sample:
                continue
            fh.write(json.dumps({k: row[k] for k in ("english", "translation", "language")},
                                ensure_ascii=False) + "\n")
    return path


def demo_queries() -> list[tuple[str, str, str, str]]:
    """A few searches in other languages for `assetdb demo`: (language, query, colour,
    shape), on held-out (colour, shape) pairs."""
    picks = [("fr", *HELD_OUT_COMBOS[3]), ("de", *HELD_OUT_COMBOS[0]),
             ("ru", *HELD_OUT_COMBOS[1]), ("zh", *HELD_OUT_COMBOS[5]),
             ("es", *HELD_OUT_COMBOS[4])]
    return [(lang, color_query(lang, color, shape), color, shape)
            for lang, color, shape in picks]
