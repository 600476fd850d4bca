"""The built-in backend: CLIP models through sentence-transformers.

torch and sentence-transformers are imported here only, and only when a model is
loaded, so that commands that need no model start instantly.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from assetdb.embedding.encoder import (
    CLIP_MAX_TOKENS,
    IMAGE,
    TEXT,
    Preprocess,
    SoftmaxScoring,
    canonical_model_name,
)
from assetdb.errors import ModelError


def _quiet_transformers() -> None:
    # Keep "Loading weights" bars and backend notices off the user's terminal.
    import logging

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)


def _hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connect to the hub, instead of the hub client's minutes of retries."""
    import os
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def offline_advice() -> str:
    from assetdb.shipped import DEMO_MODEL_DIR

    return ("try `assetdb demo` (offline, with the small model shipped in the package), or "
            "set ASSETDB_MODEL to a local directory, e.g. the shipped demo model: "
            f"ASSETDB_MODEL={DEMO_MODEL_DIR}")


class SentenceTransformerClip:
    """A CLIP model through sentence-transformers: batched, L2-normalised float32."""

    towers = frozenset({IMAGE, TEXT})

    def __init__(self, name: str, device: str | None = None, batch_size: int = 32) -> None:
        self.name = canonical_model_name(name)
        self.batch_size = batch_size
        self._lock = threading.Lock()  # torch modules are not safe to call concurrently
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ModelError(f"the model backend is not installed: {exc}") from None
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        _quiet_transformers()
        local = Path(name).expanduser().exists()
        if not local and name.startswith(("/", "./", "../", "~")):
            raise ModelError(f"cannot load the model {name!r}: there is no directory at {name} "
                             "(ASSETDB_MODEL or --model)")
        offline_hint = offline_advice()
        try:
            try:
                # A model in the local cache loads without asking the hub.
                self.model = SentenceTransformer(self.name, device=self.device,
                                                 local_files_only=True)
            except Exception:
                if local:
                    raise
                if not _hub_reachable():
                    raise ModelError(
                        f"cannot load the model {name!r}: it is not in the local cache and "
                        f"there is no network to download it from the model hub; "
                        f"{offline_hint}"
                    ) from None
                self.model = SentenceTransformer(self.name, device=self.device)
        except ModelError:
            raise
        except Exception as exc:  # hub errors, missing files, bad configs all land here
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            hint = (
                "the directory does not hold a sentence-transformers or Hugging Face CLIP model"
                if local
                else offline_hint
            )
            raise ModelError(f"cannot load the model {name!r}: {reason} ({hint})") from None
        self._clip = self._find_clip_module()
        self._cap_text_length()
        self.dimension = int(self.encode_texts([""]).shape[1])
        edge, resample = self._resize_spec()
        self.preprocess = Preprocess(self._image_size(), edge, resample)
        self.scoring = SoftmaxScoring(self._logit_scale())

    def _find_clip_module(self) -> Any:
        first = self.model[0]
        if not hasattr(first, "processor") or not hasattr(first, "model"):
            raise ModelError(f"{self.name!r} is not a CLIP model: it cannot embed images")
        return first

    def _cap_text_length(self) -> None:
        # CLIP reads at most 77 tokens; without this cap a longer text raises instead of
        # being truncated, because the limit sits in the text sub-config.
        tokenizer = getattr(self._clip, "tokenizer", None)
        text_config = getattr(self._clip.model.config, "text_config", None)
        limit = getattr(text_config, "max_position_embeddings", None) or CLIP_MAX_TOKENS
        if tokenizer is not None and (tokenizer.model_max_length or 10**9) > limit:
            tokenizer.model_max_length = limit

    def _image_size(self) -> int:
        proc = getattr(self._clip.processor, "image_processor", None)
        crop = getattr(proc, "crop_size", None) or getattr(proc, "size", None) or {}
        for key in ("height", "shortest_edge"):
            value = crop.get(key) if hasattr(crop, "get") else getattr(crop, key, None)
            if value:
                return int(value)
        return 224

    def _resize_spec(self) -> tuple[int | None, int]:
        # What the processor's resize does, so decode threads can do it ahead of time
        # (assetdb.embedding.preprocess). None: the processor resizes in another way.
        proc = getattr(self._clip.processor, "image_processor", None)
        size = getattr(proc, "size", None) or {}
        edge = size.get("shortest_edge") if hasattr(size, "get") else None
        longest = size.get("longest_edge") if hasattr(size, "get") else None
        resample = getattr(proc, "resample", None)
        if not edge or longest or not getattr(proc, "do_resize", True) or resample is None:
            return None, int(Image.Resampling.BICUBIC)
        return int(edge), int(resample)

    def _logit_scale(self) -> float:
        scale = getattr(self._clip.model, "logit_scale", None)
        return float(scale.exp().item()) if scale is not None else 100.0

    @property
    def image_size(self) -> int:
        return self.preprocess.image_size

    @property
    def clip_model(self) -> Any:
        """The Hugging Face CLIPModel inside (for fine-tuning)."""
        return self._clip.model

    @property
    def processor(self) -> Any:
        """The Hugging Face CLIP processor inside (for fine-tuning)."""
        return self._clip.processor

    def _encode(self, items: Sequence[Any]) -> np.ndarray:
        if len(items) == 0:
            return np.zeros((0, getattr(self, "dimension", 0)), dtype=np.float32)
        with self._lock:
            vectors = self.model.encode(
                list(items),
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        # CLIP reads at most 77 tokens: longer texts are truncated (see _cap_text_length).
        return self._encode([str(t) for t in texts])

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self._encode(images)
