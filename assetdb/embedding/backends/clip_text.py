"""A text-only encoder: a CLIP text tower with its own tokenizer, written into an image
model's space by distillation (`assetdb finetune --distill-text`).

The tokenizer is a `tokenizers` tokenizer.json (its own vocabulary over the languages it
was trained on, CJK characters split one by one), the tower transformers'
CLIPTextModelWithProjection.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from assetdb.embedding.encoder import CLIP_MAX_TOKENS, TEXT, Preprocess, SoftmaxScoring
from assetdb.embedding.text_model import read_manifest
from assetdb.errors import ModelError

TOKENIZER_FILE = "tokenizer.json"


def load_tokenizer(directory: Path, max_length: int = CLIP_MAX_TOKENS) -> Any:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
    tok.enable_truncation(max_length)
    pad = tok.token_to_id("[PAD]")
    tok.enable_padding(pad_id=pad if pad is not None else 0, pad_token="[PAD]")
    return tok


def encode_tokens(tokenizer: Any, texts: Sequence[str]) -> dict[str, Any]:
    import torch

    batch = tokenizer.encode_batch([str(t) for t in texts])
    return {"input_ids": torch.tensor([e.ids for e in batch], dtype=torch.long),
            "attention_mask": torch.tensor([e.attention_mask for e in batch],
                                           dtype=torch.long)}


class ClipTextEncoder:
    towers = frozenset({TEXT})

    def __init__(self, name: str, device: str | None = None, batch_size: int = 32) -> None:
        manifest = read_manifest(name)  # a clear error before any weights load
        try:
            import torch
            from transformers import CLIPTextModelWithProjection
        except ImportError as exc:
            raise ModelError(f"the text model backend is not installed: {exc}") from None
        from assetdb.embedding.backends.st_clip import _quiet_transformers

        _quiet_transformers()
        self.name = manifest.name
        self.manifest = manifest
        self.languages = manifest.languages
        self.batch_size = batch_size
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._lock = threading.Lock()
        try:
            self.model = CLIPTextModelWithProjection.from_pretrained(str(manifest.path))
            self.tokenizer = load_tokenizer(manifest.path)
        except Exception as exc:  # missing or damaged files
            raise ModelError(f"cannot load the text model {name!r}: {exc}") from None
        self.model.to(self.device).eval()
        self.dimension = int(self.model.config.projection_dim)
        if self.dimension != manifest.dimension:
            raise ModelError(f"{name!r}: its manifest says {manifest.dimension}-d, its "
                             f"weights make {self.dimension}-d vectors")
        self.preprocess = Preprocess(0)  # no image tower
        self.scoring = SoftmaxScoring()

    @property
    def image_size(self) -> int:
        return 0

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        if len(texts) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        out = []
        with self._lock, torch.no_grad():
            for i in range(0, len(texts), max(self.batch_size, 64)):
                tokens = encode_tokens(self.tokenizer, texts[i : i + max(self.batch_size, 64)])
                emb = self.model(**{k: v.to(self.device) for k, v in tokens.items()}).text_embeds
                out.append(torch.nn.functional.normalize(emb, dim=-1).cpu().numpy())
        return np.ascontiguousarray(np.concatenate(out), dtype=np.float32)

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        raise ModelError(f"{self.name!r} is a text model: it cannot embed images")
