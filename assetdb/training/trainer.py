"""Contrastive fine-tuning of a CLIP model, as in the CLIP paper: symmetric InfoNCE over a
batch's image-text similarities, scaled by a learnable temperature (logit_scale).

The base model is loaded through sentence-transformers (a hub name or a local directory,
in sentence-transformers or plain Hugging Face layout), trained in place, and saved as a
sentence-transformers directory that ASSETDB_MODEL loads. Pairs whose captions are the
same text are positives to each other, so duplicate captions do not fight each other.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assetdb.embedding.images import load_image
from assetdb.errors import AssetdbError
from assetdb.training.augment import NO_AUGMENT, AugmentConfig, augment
from assetdb.training.metrics import recall_at_k
from assetdb.training.pairs import Pair, split_pairs

MAX_LOGIT_SCALE = math.log(100.0)  # CLIP clamps the temperature at 1/100


@dataclass
class TrainConfig:
    epochs: int = 5
    batch_size: int = 64
    lr: float = 1e-5
    weight_decay: float = 0.1
    warmup_fraction: float = 0.05
    val_fraction: float = 0.1
    seed: int = 0
    device: str | None = None
    threads: int | None = None  # torch intra-op threads; None leaves torch's default
    augment: AugmentConfig = NO_AUGMENT  # fresh random transforms of every image per step


@dataclass
class TrainReport:
    base: str
    out: str
    train_pairs: int
    val_pairs: int
    epochs: int
    steps: int
    seconds: float
    before: dict[str, float]
    after: dict[str, float]
    logit_scale: float
    losses: list[float] = field(default_factory=list)  # mean training loss per epoch
    augment: dict[str, Any] = field(default_factory=dict)  # the augmentation used

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


StepCallback = Callable[[int, int, float], None]  # (step, total steps, loss)


def _features(output: Any) -> Any:
    # transformers 5 returns a model output here; 4.x returned the tensor itself.
    return output if hasattr(output, "norm") else output.pooler_output


class _Clip:
    """The HF CLIPModel and processor inside a sentence-transformers model."""

    def __init__(self, base: str, device: str | None) -> None:
        import torch

        from assetdb.embedding.backends.st_clip import SentenceTransformerClip

        wrapper = SentenceTransformerClip(base, device=device or "cpu")
        self.st = wrapper.model
        self.device = torch.device(wrapper.device)
        self.model = wrapper.clip_model
        self.processor = wrapper.processor
        self.image_size = wrapper.image_size
        self.max_tokens = min(77, self.model.config.text_config.max_position_embeddings)

    def pixels(self, paths: Sequence[Path]) -> Any:
        import torch

        chunks = []
        for i in range(0, len(paths), 256):
            images = [load_image(p, self.image_size) for p in paths[i : i + 256]]
            out = self.processor.image_processor(images, return_tensors="pt")["pixel_values"]
            chunks.append(out.to(torch.float32))
        return torch.cat(chunks)

    def tokens(self, captions: Sequence[str]) -> dict[str, Any]:
        return dict(self.processor.tokenizer(list(captions), padding=True, truncation=True,
                                             max_length=self.max_tokens, return_tensors="pt"))

    def embed(self, pixels: Any, tokens: dict[str, Any]) -> tuple[Any, Any]:
        dev = self.device
        img = _features(self.model.get_image_features(pixel_values=pixels.to(dev)))
        txt = _features(self.model.get_text_features(
            input_ids=tokens["input_ids"].to(dev),
            attention_mask=tokens["attention_mask"].to(dev)))
        return img / img.norm(dim=-1, keepdim=True), txt / txt.norm(dim=-1, keepdim=True)


def _recall(clip: _Clip, pixels: Any, tokens: dict[str, Any],
            captions: Sequence[str], batch: int = 256) -> dict[str, float]:
    import torch

    clip.model.eval()
    imgs, txts = [], []
    with torch.no_grad():
        for i in range(0, len(captions), batch):
            sl = slice(i, i + batch)
            img, txt = clip.embed(pixels[sl], {k: v[sl] for k, v in tokens.items()})
            imgs.append(img.cpu().numpy())
            txts.append(txt.cpu().numpy())
    return recall_at_k(np.concatenate(imgs), np.concatenate(txts), captions)


def contrastive_loss(img: Any, txt: Any, logit_scale: Any, groups: Any) -> Any:
    """Symmetric InfoNCE. groups[i] == groups[j] when pairs i and j share a caption; such
    pairs share the target probability (with unique captions: the usual identity)."""
    import torch.nn.functional as F

    logits = logit_scale.exp() * img @ txt.T
    same = (groups[:, None] == groups[None, :]).float()
    targets = same / same.sum(dim=1, keepdim=True)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def finetune(
    base: str,
    pairs: Sequence[Pair],
    out: Path,
    config: TrainConfig | None = None,
    *,
    on_step: StepCallback | None = None,
    log: Callable[[str], None] = lambda _msg: None,
) -> TrainReport:
    """Train `base` on `pairs` (minus a held-out validation split), save it to `out`."""
    import torch

    cfg = config or TrainConfig()
    if cfg.epochs < 1 or cfg.batch_size < 2 or cfg.lr <= 0:
        raise AssetdbError("epochs must be >= 1, batch size >= 2 and the learning rate > 0")
    out = Path(out).expanduser()
    if out.exists() and any(out.iterdir()):
        raise AssetdbError(f"{out} exists and is not empty: choose a new output directory")
    train, val = split_pairs(pairs, cfg.val_fraction, cfg.seed)
    if len(train) < cfg.batch_size:
        raise AssetdbError(f"{len(train)} training pairs are fewer than one batch "
                           f"({cfg.batch_size}); lower --batch-size")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    started = time.perf_counter()
    clip = _Clip(base, cfg.device)
    log(f"Preprocessing {len(train)} training and {len(val)} validation pairs ...")
    # Images are decoded and preprocessed once (pixels in memory), not once per epoch.
    uniq = sorted({p.image for p in train} | {p.image for p in val})
    row = {path: i for i, path in enumerate(uniq)}
    all_pixels = clip.pixels(uniq)
    captions = [p.caption for p in train]
    group_ids = {c: i for i, c in enumerate(dict.fromkeys(captions))}
    train_pixels = all_pixels[[row[p.image] for p in train]]
    train_tokens = clip.tokens(captions)
    train_groups = torch.tensor([group_ids[c] for c in captions])
    val_pixels = all_pixels[[row[p.image] for p in val]]
    val_captions = [p.caption for p in val]
    val_tokens = clip.tokens(val_captions)

    before = _recall(clip, val_pixels, val_tokens, val_captions)
    log("before: " + format_recall(before))

    model = clip.model
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        # No weight decay on gains, biases, embeddings' scale or the temperature.
        (no_decay if param.ndim < 2 or "logit_scale" in name else decay).append(param)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
    steps_per_epoch = len(train) // cfg.batch_size  # the last partial batch is dropped
    total = steps_per_epoch * cfg.epochs
    warmup = max(1, int(total * cfg.warmup_fraction))

    def lr_at(step: int) -> float:  # linear warmup, then cosine decay to zero
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    rng = random.Random(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)  # the augmentation's draws, reproducible
    proc = clip.processor.image_processor
    mean, std = getattr(proc, "image_mean", None), getattr(proc, "image_std", None)
    step, losses = 0, []
    for epoch in range(cfg.epochs):
        model.train()
        order = list(range(len(train)))
        rng.shuffle(order)
        epoch_loss = 0.0
        for b in range(steps_per_epoch):
            idx = torch.tensor(order[b * cfg.batch_size : (b + 1) * cfg.batch_size])
            tokens = {k: v[idx] for k, v in train_tokens.items()}
            pixels = augment(train_pixels[idx], cfg.augment, gen, mean, std)
            img, txt = clip.embed(pixels, tokens)
            loss = contrastive_loss(img, txt, model.logit_scale,
                                    train_groups[idx].to(clip.device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, MAX_LOGIT_SCALE)
            step += 1
            value = float(loss.detach())
            epoch_loss += value
            if on_step:
                on_step(step, total, value)
        losses.append(epoch_loss / max(1, steps_per_epoch))
        log(f"epoch {epoch + 1}/{cfg.epochs}: loss {losses[-1]:.4f}, "
            f"temperature 1/{float(model.logit_scale.detach().exp()):.1f}")

    after = _recall(clip, val_pixels, val_tokens, val_captions)
    log("after:  " + format_recall(after))
    model.eval()
    clip.st.save(str(out))
    return TrainReport(
        base=base, out=str(out.resolve()), train_pairs=len(train), val_pairs=len(val),
        epochs=cfg.epochs, steps=step, seconds=round(time.perf_counter() - started, 1),
        before=before, after=after, logit_scale=float(model.logit_scale.detach().exp()),
        losses=losses, augment=cfg.augment.as_dict(),
    )


def format_recall(recall: dict[str, float]) -> str:
    parts = []
    for way in ("t2i", "i2t"):
        ks = "/".join(f"{recall[f'{way}@{k}']:.3f}" for k in (1, 5, 10) if f"{way}@{k}" in recall)
        parts.append(f"{way.replace('2', '->')} R@1/5/10 {ks}")
    return ", ".join(parts)
