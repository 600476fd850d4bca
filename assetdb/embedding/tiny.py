"""Build a small CLIP (random weights, real transformers classes) saved as a model directory.

The build environment reaches no model hub, so tests, and the demo model's trainer,
start from this. The directory loads through exactly the code path real models use.

Byte-level BPE vocabulary: every byte, every byte ending a word, and optional merges
that spell whole words. Note: CLIPTokenizer(vocab=dict, merges=pairs) builds a working
tokenizer; CLIPTokenizerFast(vocab_file=..., merges_file=...) silently builds an empty one
under transformers 5, which makes every text embed the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def _bytes_to_unicode() -> list[str]:
    # The reversible byte -> printable-character table of GPT-2 and CLIP.
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for _, c in sorted(zip(bs, cs, strict=True))]


def build_vocab(words: Iterable[str] = ()) -> tuple[dict[str, int], list[tuple[str, str]]]:
    chars = _bytes_to_unicode()
    tokens = chars + [c + "</w>" for c in chars]
    merges: list[tuple[str, str]] = []
    seen = set(tokens)
    for word in words:
        word = word.lower()
        if len(word) < 2:
            continue
        left = word[0]
        for i, ch in enumerate(word[1:], start=1):
            right = ch + "</w>" if i == len(word) - 1 else ch
            merged = left + right
            if merged not in seen:
                merges.append((left, right))
                tokens.append(merged)
                seen.add(merged)
            left = merged
    tokens += [BOS, EOS]
    return {tok: i for i, tok in enumerate(tokens)}, merges


def build_tiny_clip(
    out_dir: Path,
    *,
    words: Iterable[str] = (),
    embed_dim: int = 32,
    text_width: int = 32,
    vision_width: int = 32,
    layers: int = 2,
    heads: int = 2,
    image_size: int = 32,
    patch_size: int = 8,
    seed: int = 0,
    logit_scale: float | None = None,
) -> Path:
    """Save a randomly initialised CLIPModel + tokenizer + image processor to out_dir."""
    import torch
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTokenizer,
    )

    vocab, merges = build_vocab(words)
    bos_id, eos_id = vocab[BOS], vocab[EOS]
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, bos_token=BOS, eos_token=EOS,
                              unk_token=EOS, pad_token=EOS)
    config = CLIPConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": text_width,
            "intermediate_size": text_width * 4,
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "max_position_embeddings": 77,
            "bos_token_id": bos_id,
            "eos_token_id": eos_id,
            "pad_token_id": eos_id,
        },
        vision_config={
            "hidden_size": vision_width,
            "intermediate_size": vision_width * 4,
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "image_size": image_size,
            "patch_size": patch_size,
        },
        projection_dim=embed_dim,
        # The temperature's starting value, as ln(1 / temperature): CLIP's own 1/0.07
        # unless a recipe says otherwise.
        **({} if logit_scale is None else {"logit_scale_init_value": logit_scale}),
    )
    torch.manual_seed(seed)
    model = CLIPModel(config)
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
    )
    processor = CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir
