"""A multilingual text encoder for an existing image space, by distillation (Reimers &
Gurevych 2020, the recipe of sentence-transformers' clip-ViT-B-32-multilingual-v1).

The image tower and every stored vector stay as they are. A student text tower learns
to put an English sentence *and its translations* where the teacher's (the CLIP model's
own) text tower puts the English sentence. The student gets its own tokenizer, trained
on the pairs' texts (WordPiece; CJK characters split one by one, so scripts beyond Latin
work), and starts as a copy of the teacher's text tower: its layers, and the embedding
of every word the two vocabularies share. Training is resumable (a checkpoint after each
epoch), and reports per-language retrieval on held-out sentences: for each translation,
is the nearest teacher embedding among the held-out English sentences its own?
"""

from __future__ import annotations

import json
import math
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assetdb.errors import AssetdbError
from assetdb.training.pairs import read_rows, split_by

ENGLISH_KEYS = ("english", "en", "source")
TRANSLATION_KEYS = ("translation", "text", "target")
LANGUAGE_KEYS = ("language", "lang")
LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$")
SPECIALS = ("[PAD]", "[UNK]", "<s>", "</s>")
CHECKPOINT = "checkpoint"


@dataclass(frozen=True)
class TranslationPair:
    english: str
    translation: str
    language: str


@dataclass
class DistillConfig:
    epochs: int = 30
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.05
    val_fraction: float = 0.1
    vocab_size: int = 8000
    seed: int = 0
    device: str | None = None
    threads: int | None = None


@dataclass
class DistillReport:
    teacher: str
    out: str
    languages: list[str]
    train_pairs: int
    val_pairs: int
    epochs: int
    steps: int
    seconds: float
    vocab_size: int
    before: dict[str, float]  # per language: held-out translation retrieval top-1
    after: dict[str, float]
    losses: list[float] = field(default_factory=list)
    resumed_from_epoch: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _pick(row: dict, keys: Sequence[str]) -> str | None:
    for key in keys:
        value = row.get(key)
        if value not in (None, ""):
            return str(value).strip()
    return None


def check_language(code: str) -> str:
    code = code.strip().lower()
    if not LANGUAGE_CODE.match(code):
        raise AssetdbError(f"unknown language {code!r}: give an ISO 639 code such as fr, "
                           "de, ru or zh")
    return code


def load_translation_pairs(path: Path, languages: Sequence[str] = ()) -> list[TranslationPair]:
    """(English, translation, language) rows from .jsonl, .csv or .tsv. Every row needs
    all three, or nothing is read (one clear error naming the line). `languages`: keep
    these only; each must have rows in the file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise AssetdbError(f"pairs file not found: {path}")
    rows = read_rows(path, "translation pairs", tsv=True)
    pairs = []
    for where, row in rows:
        english, translation = _pick(row, ENGLISH_KEYS), _pick(row, TRANSLATION_KEYS)
        language = _pick(row, LANGUAGE_KEYS)
        missing = [name for name, value in (("english", english), ("translation", translation),
                                            ("language", language)) if value is None]
        if missing:
            raise AssetdbError(f"{where}: missing {', '.join(missing)} (each row needs the "
                               "columns english, translation and language)")
        pairs.append(TranslationPair(english, translation, check_language(language)))
    if not pairs:
        raise AssetdbError(f"{path}: no translation pairs")
    have = sorted({p.language for p in pairs})
    if languages:
        wanted = [check_language(code) for code in languages]
        unknown = [code for code in wanted if code not in have]
        if unknown:
            raise AssetdbError(f"unknown language {', '.join(map(repr, unknown))}: {path} has "
                               f"pairs for {', '.join(have)}")
        pairs = [p for p in pairs if p.language in wanted]
    return pairs


def build_tokenizer(texts: Sequence[str], vocab_size: int) -> Any:
    """A WordPiece tokenizer over the texts: lower-cased, NFKC, Russian ё read as е, CJK
    characters one token each, `<s> ... </s>` around every text."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence([
        normalizers.NFKC(), normalizers.Lowercase(), normalizers.Replace("ё", "е"),
        normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                   strip_accents=False, lowercase=False)])
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=list(SPECIALS),
                                        min_frequency=1)
    tok.train_from_iterator(list(texts), trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", tok.token_to_id("<s>")),
                                              ("</s>", tok.token_to_id("</s>"))])
    return tok


def _student_from_teacher(teacher: Any, teacher_vocab: dict[str, int], tokenizer: Any,
                          seed: int) -> Any:
    """A CLIP text tower with the student's vocabulary, initialised from the teacher's:
    layers and projection copied, shared words' embeddings copied, new ones drawn around
    the teacher's."""
    import torch
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    tc = teacher.config.text_config.to_dict()
    vocab = tokenizer.get_vocab()
    tc.update(vocab_size=len(vocab), pad_token_id=vocab["[PAD]"], bos_token_id=vocab["<s>"],
              eos_token_id=vocab["</s>"], projection_dim=int(teacher.config.projection_dim))
    for key in ("architectures", "model_type", "transformers_version", "dtype", "torch_dtype"):
        tc.pop(key, None)
    torch.manual_seed(seed)
    student = CLIPTextModelWithProjection(CLIPTextConfig(**tc))
    own = {k: v for k, v in teacher.text_model.state_dict().items()
           if "token_embedding" not in k}
    student.text_model.load_state_dict(own, strict=False)
    student.text_projection.load_state_dict(teacher.text_projection.state_dict())
    old = teacher.text_model.embeddings.token_embedding.weight.detach()
    new = student.text_model.embeddings.token_embedding.weight
    with torch.no_grad():
        new.normal_(float(old.mean()), float(old.std()))
        by_word = {t[: -len("</w>")]: i for t, i in teacher_vocab.items() if t.endswith("</w>")}
        bos = teacher.config.text_config.bos_token_id
        eos = teacher.config.text_config.eos_token_id
        for token, i in vocab.items():
            source = {"<s>": bos, "</s>": eos, "[PAD]": eos}.get(token, by_word.get(token))
            if source is not None and 0 <= source < old.shape[0]:
                new[i] = old[source]
    return student


def _tokens(tokenizer: Any, texts: Sequence[str]) -> dict[str, Any]:
    from assetdb.embedding.backends.clip_text import encode_tokens

    return encode_tokens(tokenizer, texts)


def _embed_student(student: Any, tokenizer: Any, texts: Sequence[str], device: Any,
                   batch: int = 512) -> Any:
    import torch

    out = []
    for i in range(0, len(texts), batch):
        tok = _tokens(tokenizer, texts[i : i + batch])
        emb = student(**{k: v.to(device) for k, v in tok.items()}).text_embeds
        out.append(torch.nn.functional.normalize(emb, dim=-1))
    return torch.cat(out)


def per_language_retrieval(student: Any, tokenizer: Any, pairs: Sequence[TranslationPair],
                           teacher_vectors: dict[str, Any], device: Any) -> dict[str, float]:
    """For each language: the share of held-out translations whose nearest teacher vector,
    among the held-out English sentences, is their own sentence's."""
    import torch

    english = sorted({p.english for p in pairs})
    index = {e: i for i, e in enumerate(english)}
    targets = torch.stack([teacher_vectors[e] for e in english])
    out = {}
    student.eval()
    with torch.no_grad():
        for lang in sorted({p.language for p in pairs}):
            rows = [p for p in pairs if p.language == lang]
            vecs = _embed_student(student, tokenizer, [p.translation for p in rows], device)
            best = (vecs @ targets.T).argmax(dim=1).cpu().tolist()
            hits = sum(b == index[p.english] for b, p in zip(best, rows, strict=True))
            out[lang] = hits / len(rows)
    return out


StepCallback = Callable[[int, int, float], None]


def distill_text(
    teacher_name: str,
    pairs: Sequence[TranslationPair],
    out: Path,
    config: DistillConfig | None = None,
    *,
    resume: bool = False,
    on_step: StepCallback | None = None,
    log: Callable[[str], None] = lambda _msg: None,
) -> DistillReport:
    """Train a multilingual student of `teacher_name`'s text tower; save it to `out`."""
    import torch

    from assetdb.embedding.text_model import FORMAT, MANIFEST, fingerprint
    from assetdb.training.trainer import _Clip, _features

    cfg = config or DistillConfig()
    if cfg.epochs < 1 or cfg.batch_size < 2 or cfg.lr <= 0:
        raise AssetdbError("epochs must be >= 1, batch size >= 2 and the learning rate > 0")
    out = Path(out).expanduser()
    ckpt = out / CHECKPOINT
    if resume and not (ckpt / "state.pt").is_file():
        raise AssetdbError(f"nothing to resume: {ckpt} holds no checkpoint")
    if not resume and out.exists() and any(out.iterdir()):
        raise AssetdbError(f"{out} exists and is not empty: choose a new output directory "
                           "(or --resume an interrupted run)")
    # English is a language of the student too: it must keep the teacher's English.
    pairs = list(dict.fromkeys([*pairs, *(TranslationPair(p.english, p.english, "en")
                                          for p in pairs)]))
    languages = sorted({p.language for p in pairs})
    # By English sentence: a held-out sentence has none of its translations in training.
    train, val = split_by(pairs, lambda p: p.english, cfg.val_fraction, cfg.seed,
                          "English sentences")
    if len(train) < cfg.batch_size:
        raise AssetdbError(f"{len(train)} training pairs are fewer than one batch "
                           f"({cfg.batch_size}); lower --batch-size")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    started = time.perf_counter()
    teacher = _Clip(teacher_name, cfg.device)
    device = teacher.device
    teacher.model.eval()
    english = sorted({p.english for p in pairs})
    with torch.no_grad():
        vecs = []
        for i in range(0, len(english), 512):
            tok = teacher.tokens(english[i : i + 512])
            emb = _features(teacher.model.get_text_features(
                input_ids=tok["input_ids"].to(device),
                attention_mask=tok["attention_mask"].to(device)))
            vecs.append(torch.nn.functional.normalize(emb, dim=-1))
    teacher_vectors = dict(zip(english, torch.cat(vecs), strict=True))

    out.mkdir(parents=True, exist_ok=True)
    if resume:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(ckpt / "tokenizer.json"))
    else:
        tokenizer = build_tokenizer([p.translation for p in pairs], cfg.vocab_size)
        ckpt.mkdir(parents=True, exist_ok=True)
        tokenizer.save(str(ckpt / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    from assetdb.embedding.backends.clip_text import load_tokenizer

    tokenizer.save(str(out / "tokenizer.json"))
    tokenizer = load_tokenizer(out)  # padded and truncated as the encoder will read it
    student = _student_from_teacher(teacher.model, teacher.processor.tokenizer.get_vocab(),
                                    tokenizer, cfg.seed).to(device)
    decay = [p for n, p in student.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in student.named_parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    warmup = max(1, int(total * cfg.warmup_fraction))

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    first_epoch, losses = 0, []
    if resume:
        state = torch.load(ckpt / "state.pt", map_location=device, weights_only=False)
        if state["config"] != {**cfg.__dict__, "device": None, "threads": None} or \
                state["languages"] != languages:
            raise AssetdbError("the checkpoint was made with other settings or pairs: resume "
                               "with the same options, or start a new output directory")
        student.load_state_dict(state["student"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        first_epoch, losses = state["epoch"], state["losses"]
        log(f"resuming after epoch {first_epoch}/{cfg.epochs}")
    before = per_language_retrieval(student, tokenizer, val, teacher_vectors, device)
    log("held-out retrieval before: " + format_languages(before))
    train_tokens = _tokens(tokenizer, [p.translation for p in train])
    targets = torch.stack([teacher_vectors[p.english] for p in train])
    step = first_epoch * steps_per_epoch
    for epoch in range(first_epoch, cfg.epochs):
        student.train()
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(
            cfg.seed * 1000 + epoch))
        epoch_loss = 0.0
        for b in range(steps_per_epoch):
            idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            mask = train_tokens["attention_mask"][idx]
            width = int(mask.sum(dim=1).max())
            batch = {"input_ids": train_tokens["input_ids"][idx][:, :width].to(device),
                     "attention_mask": mask[:, :width].to(device)}
            emb = torch.nn.functional.normalize(student(**batch).text_embeds, dim=-1)
            loss = (1 - (emb * targets[idx].to(device)).sum(dim=-1)).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            value = float(loss.detach())
            epoch_loss += value
            if on_step:
                on_step(step, total, value)
        losses.append(epoch_loss / steps_per_epoch)
        log(f"epoch {epoch + 1}/{cfg.epochs}: loss {losses[-1]:.5f}")
        torch.save({"student": student.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "epoch": epoch + 1, "losses": losses,
                    "config": {**cfg.__dict__, "device": None, "threads": None},
                    "languages": languages}, ckpt / "state.pt.tmp")
        (ckpt / "state.pt.tmp").replace(ckpt / "state.pt")  # a kill mid-write loses nothing
    after = per_language_retrieval(student, tokenizer, val, teacher_vectors, device)
    log("held-out retrieval after:  " + format_languages(after))
    student.eval()
    student.save_pretrained(str(out))
    (out / "README.md").unlink(missing_ok=True)
    (out / "generation_config.json").unlink(missing_ok=True)
    (out / MANIFEST).write_text(json.dumps({
        "format": FORMAT, "kind": "clip-text", "dimension": int(student.config.projection_dim),
        "languages": languages, "teacher": str(teacher_name),
        "image_fingerprint": fingerprint(teacher_name),
        "held_out_retrieval": after,
    }, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    shutil.rmtree(ckpt, ignore_errors=True)
    return DistillReport(
        teacher=str(teacher_name), out=str(out.resolve()), languages=languages,
        train_pairs=len(train), val_pairs=len(val), epochs=cfg.epochs, steps=step,
        seconds=round(time.perf_counter() - started, 1), vocab_size=tokenizer.get_vocab_size(),
        before=before, after=after, losses=losses, resumed_from_epoch=first_epoch)


def format_languages(scores: dict[str, float]) -> str:
    return ", ".join(f"{lang} {value:.3f}" for lang, value in sorted(scores.items()))
