"""`assetdb finetune` and `assetdb eval`."""

from __future__ import annotations

from pathlib import Path

import click

from assetdb.cli.common import get_settings, json_option, load_model
from assetdb.cli.output import kv_lines, print_json, print_table, progress_bar


def _augment_options(fn):  # noqa: ANN001, ANN202 - a click decorator
    from assetdb.training.augment import FLIPS, AugmentConfig

    d = AugmentConfig()
    for option in reversed([
        click.option("--augment/--no-augment", default=True, show_default=True,
                     help="Draw fresh random transforms of every image at every step."),
        click.option("--crop-scale", type=float, default=d.crop_scale, show_default=True,
                     help="Random resized crop: the least share of the area kept."),
        click.option("--aspect", type=float, default=d.aspect, show_default=True,
                     help="Crop aspect ratio drawn in [1/A, A] (stretches the content)."),
        click.option("--rotate", type=float, default=d.rotate, show_default=True,
                     metavar="DEGREES", help="Rotation drawn in [-D, D]."),
        click.option("--flip", type=click.Choice(FLIPS), default=d.flip, show_default=True,
                     help="Mirror images: none where mirroring changes the label "
                          "(text); dihedral adds turns by 90 degrees."),
        click.option("--translate", type=float, default=d.translate, show_default=True,
                     help="Position jitter, a share of the side."),
        click.option("--zoom-out", type=float, default=d.zoom_out, show_default=True,
                     help="Scale jitter: content up to this factor smaller."),
        click.option("--color-jitter", type=float, default=d.color_jitter, show_default=True,
                     help="Brightness/contrast/saturation jitter; keep 0 where colour is "
                          "part of the label."),
        click.option("--blur", type=float, default=d.blur, show_default=True,
                     help="Share of images softened by a 3x3 Gaussian."),
        click.option("--noise", type=float, default=d.noise, show_default=True,
                     help="Pixel noise, standard deviation up to this."),
        click.option("--outline", type=float, default=d.outline, show_default=True,
                     help="Share of images whose foreground (what differs from the "
                          "background colour) is reduced to its outline."),
        click.option("--texture", type=float, default=d.texture, show_default=True,
                     help="Share of images whose background gets a random procedural "
                          "texture in its own colour's shades."),
        click.option("--shade", type=float, default=d.shade, show_default=True,
                     help="Foreground and background lighter or darker apart, up to this "
                          "share (hue kept)."),
    ]):
        fn = option(fn)
    return fn


_AUGMENT_KEYS = ("crop_scale", "aspect", "rotate", "flip", "translate", "zoom_out",
                 "color_jitter", "blur", "noise", "outline", "texture", "shade")


@click.command()
@click.option("--pairs", "pairs_file", required=True, type=click.Path(path_type=Path),
              help="(image, caption) pairs: .jsonl with {\"image\": ..., \"caption\": ...} "
                   "or .csv with image,caption columns. Paths are relative to the file. "
                   "With --distill-text: (english, translation, language) rows.")
@click.option("--base", required=True,
              help="The model to start from: a sentence-transformers CLIP name or a local "
                   "model directory (with --distill-text: the teacher).")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="A new (or empty) directory for the trained model.")
@click.option("--epochs", default=None, type=click.IntRange(min=1),
              help="Passes over the pairs [default: 5; 30 with --distill-text].")
@click.option("--batch-size", default=None, type=click.IntRange(min=2),
              help="Pairs per step; every other pair in the batch is a negative "
                   "[default: 64; 256 with --distill-text].")
@click.option("--lr", default=None, type=float,
              help="Peak learning rate (AdamW, warmup then cosine decay) [default: 1e-5, "
                   "which suits a pretrained CLIP; from scratch about 1e-3; 2e-3 with "
                   "--distill-text].")
@click.option("--weight-decay", default=0.1, show_default=True, type=float)
@click.option("--val-fraction", default=0.1, show_default=True, type=float,
              help="Share of the images (or English sentences) held out for validation.")
@click.option("--seed", default=0, show_default=True, type=int)
@_augment_options
@click.option("--distill-text", is_flag=True,
              help="Train a multilingual text encoder for --base's image space from "
                   "(english, translation, language) pairs, instead of fine-tuning.")
@click.option("--language", "languages", multiple=True, metavar="CODE",
              help="With --distill-text: train on these languages only (repeat, or "
                   "comma-separated); default: every language in the pairs file.")
@click.option("--vocab-size", default=8000, show_default=True, type=click.IntRange(min=100),
              help="With --distill-text: the student tokenizer's vocabulary (fewer than the "
                   "words there are makes inflected forms share their stems).")
@click.option("--resume", is_flag=True,
              help="With --distill-text: continue an interrupted run in --out.")
@json_option
def finetune(pairs_file: Path, base: str, out: Path, epochs: int | None,
             batch_size: int | None, lr: float | None, weight_decay: float,
             val_fraction: float, seed: int, augment: bool, distill_text: bool,
             languages: tuple[str, ...], vocab_size: int, resume: bool, as_json: bool,
             **augment_options: object) -> None:
    """Fine-tune a CLIP model on (image, caption) pairs, contrastively; or, with
    --distill-text, train a multilingual text encoder for its image space.

    The loss is CLIP's: symmetric InfoNCE over each batch's image-text similarities,
    with a learnable temperature. Images are augmented (random resized crops,
    rotations, flips, position and scale jitter; colour jitter off) unless
    --no-augment. A validation split (by image) is held out, and recall@1/5/10
    text-to-image and image-to-text is printed before and after. The saved
    directory is a sentence-transformers model: point ASSETDB_MODEL at it (then
    `assetdb reembed`, as the vectors of a new model differ).

    With --distill-text the image tower and the stored vectors stay: a student
    learns to put each English sentence and its translations where --base's text
    tower puts the English one (docs/finetune.md). Point ASSETDB_TEXT_MODEL at the
    result; no re-embedding is needed.

    \b
    Examples:
      assetdb finetune --pairs captions.jsonl --base clip-ViT-B-32 --out ./my-clip
      assetdb finetune --pairs pairs.csv --base ./my-clip --out ./my-clip-2 \\
          --epochs 10 --batch-size 128 --lr 2e-5 --rotate 15 --flip none
      assetdb finetune --distill-text --pairs translations.jsonl --base ./my-clip \\
          --out ./my-clip-text --language fr --language de
      ASSETDB_MODEL=./my-clip assetdb eval --pairs heldout.jsonl
    """
    settings = get_settings()
    if distill_text:
        _distill(pairs_file, base, out, epochs, batch_size, lr, val_fraction, seed, languages,
                 vocab_size, resume, as_json, settings)
        return
    from assetdb.errors import AssetdbError
    from assetdb.training.augment import AugmentConfig
    from assetdb.training.pairs import load_pairs
    from assetdb.training.trainer import TrainConfig, format_recall
    from assetdb.training.trainer import finetune as run_finetune

    if languages or resume:
        raise AssetdbError("--language and --resume apply to --distill-text only")
    augmentation = AugmentConfig(enabled=augment, **{k: augment_options[k]
                                                     for k in _AUGMENT_KEYS})
    pairs = load_pairs(pairs_file)
    config = TrainConfig(epochs=epochs or 5, batch_size=batch_size or 64, lr=lr or 1e-5,
                         weight_decay=weight_decay, val_fraction=val_fraction, seed=seed,
                         device=settings.device, augment=augmentation)
    click.echo(f"Loading model {base} ...", err=True)
    bar = None

    def on_step(step: int, total: int, loss: float) -> None:
        nonlocal bar
        if bar is None:
            bar = progress_bar(total, "finetune", unit="step")
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}", refresh=False)

    try:
        report = run_finetune(base, pairs, out, config, on_step=on_step,
                              log=lambda msg: click.echo(msg, err=True))
    finally:
        if bar is not None:
            bar.close()
    if as_json:
        print_json(report.as_dict())
        return
    click.echo(f"Trained on {report.train_pairs} pairs, validated on {report.val_pairs}, "
               f"{report.epochs} epochs in {report.seconds} s")
    click.echo("before: " + format_recall(report.before))
    click.echo("after:  " + format_recall(report.after))
    click.echo(f"Saved to {report.out}\nUse it: ASSETDB_MODEL={report.out}")


def _distill(pairs_file: Path, base: str, out: Path, epochs: int | None,
             batch_size: int | None, lr: float | None, val_fraction: float, seed: int,
             languages: tuple[str, ...], vocab_size: int, resume: bool, as_json: bool,
             settings: object) -> None:
    from assetdb.training.distill import (
        DistillConfig,
        distill_text,
        format_languages,
        load_translation_pairs,
    )

    codes = [c.strip() for item in languages for c in item.split(",") if c.strip()]
    pairs = load_translation_pairs(pairs_file, codes)  # bad rows, unknown languages: now
    config = DistillConfig(epochs=epochs or 30, batch_size=batch_size or 256, lr=lr or 2e-3,
                           val_fraction=val_fraction, vocab_size=vocab_size, seed=seed,
                           device=getattr(settings, "device", None))
    click.echo(f"Loading the teacher {base} ...", err=True)
    bar = None

    def on_step(step: int, total: int, loss: float) -> None:
        nonlocal bar
        if bar is None:
            bar = progress_bar(total, "distil", unit="step")
            bar.update(step - 1)  # a resumed run starts part-way
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    try:
        report = distill_text(base, pairs, out, config, resume=resume, on_step=on_step,
                              log=lambda msg: click.echo(msg, err=True))
    finally:
        if bar is not None:
            bar.close()
    if as_json:
        print_json(report.as_dict())
        return
    click.echo(f"Distilled on {report.train_pairs} pairs ({', '.join(report.languages)}), "
               f"validated on {report.val_pairs}, {report.epochs} epochs in {report.seconds} s")
    click.echo("held-out retrieval before: " + format_languages(report.before))
    click.echo("held-out retrieval after:  " + format_languages(report.after))
    click.echo(f"Saved to {report.out}\nUse it: ASSETDB_TEXT_MODEL={report.out}")


@click.command("eval")
@click.option("--folder", type=click.Path(path_type=Path),
              help="A folder whose sub-folders are classes (the sub-folder name is the "
                   "label): zero-shot accuracy.")
@click.option("--pairs", "pairs_file", type=click.Path(path_type=Path),
              help="(image, caption) pairs, .jsonl or .csv: retrieval recall@K both ways.")
@click.option("--template", "templates", multiple=True, metavar="TEXT",
              help="Zero-shot prompt with {} for the label; repeat to ensemble. "
                   "Default: 'a photo of a {}.'")
@click.option("--model", help="Model to evaluate (default: ASSETDB_MODEL).")
@click.option("--text-model", metavar="DIR",
              help="A separate text model for the model's space (default: "
                   "ASSETDB_TEXT_MODEL, else the one the model directory names; `builtin`: "
                   "the model's own text tower).")
@json_option
def evaluate(folder: Path | None, pairs_file: Path | None, templates: tuple[str, ...],
             model: str | None, text_model: str | None, as_json: bool) -> None:
    """Measure a model on labelled images; needs no database.

    With --folder, each image is classified zero-shot among the sub-folder names,
    using prompt templates; prints accuracy (top-1, top-5) overall and per class.
    With --pairs, prints recall@1/5/10 text-to-image and image-to-text (a result
    counts when its caption is the query's caption text); pairs with a `language`
    column get the figures of each language apart too.

    \b
    Examples:
      assetdb eval --folder ./animals --template 'a photo of a {}.' --template 'a {}'
      ASSETDB_MODEL=./my-clip assetdb eval --pairs heldout.jsonl --json
      assetdb eval --pairs multilingual.jsonl --text-model ./my-clip-text
    """
    from assetdb.classify.zeroshot import DEFAULT_TEMPLATES
    from assetdb.errors import AssetdbError
    from assetdb.training.evaluate import class_folders, retrieval_recall, zero_shot_accuracy
    from assetdb.training.pairs import load_pairs

    if (folder is None) == (pairs_file is None):
        raise AssetdbError("give exactly one of --folder DIR or --pairs FILE")
    if templates and folder is None:
        raise AssetdbError("--template applies to --folder (zero-shot) only")
    settings = get_settings()
    # Validate the input before the model loads (seconds).
    if folder is not None:
        total = sum(len(v) for v in class_folders(folder).values())
    else:
        pairs = load_pairs(pairs_file)
        total = len(pairs)
    encoder = load_model(settings, model, text_model=text_model)
    kwargs = {"batch_size": settings.batch_size, "workers": settings.decode_workers}
    with progress_bar(total, "eval", unit="image") as bar:
        if folder is not None:
            result = zero_shot_accuracy(encoder, folder, templates or DEFAULT_TEMPLATES,
                                        progress=bar.update, **kwargs)
        else:
            result = retrieval_recall(encoder, pairs, progress=bar.update, **kwargs)
    if as_json:
        print_json(result)
        return
    if result["mode"] == "zero-shot":
        kv_lines([("model", result["model"]), ("images", result["images"]),
                  ("classes", len(result["classes"])), ("accuracy", result["accuracy"]),
                  ("top-5 accuracy", result["top5_accuracy"])])
        click.echo()
        print_table([{"class": k, **v} for k, v in result["per_class"].items()],
                    ("class", "images", "accuracy"))
    else:
        kv_lines([("model", result["model"]), ("pairs", result["pairs"])])
        click.echo()
        rows = [{"direction": name, **{f"R@{k}": result["recall"][f"{way}@{k}"]
                                       for k in (1, 5, 10)}}
                for way, name in (("t2i", "text -> image"), ("i2t", "image -> text"))]
        print_table(rows, ("direction", "R@1", "R@5", "R@10"))
        if result.get("per_language"):
            click.echo()
            print_table([{"language": lang, "pairs": v["pairs"],
                          **{f"t->i R@{k}": v["recall"][f"t2i@{k}"] for k in (1, 5, 10)}}
                         for lang, v in result["per_language"].items()],
                        ("language", "pairs", "t->i R@1", "t->i R@5", "t->i R@10"))
