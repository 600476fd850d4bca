"""`assetdb finetune` and `assetdb eval`."""

from __future__ import annotations

from pathlib import Path

import click

from assetdb.cli.common import get_settings, json_option, load_model
from assetdb.cli.output import kv_lines, print_json, print_table, progress_bar


@click.command()
@click.option("--pairs", "pairs_file", required=True, type=click.Path(path_type=Path),
              help="(image, caption) pairs: .jsonl with {\"image\": ..., \"caption\": ...} "
                   "or .csv with image,caption columns. Paths are relative to the file.")
@click.option("--base", required=True,
              help="The model to start from: a sentence-transformers CLIP name or a local "
                   "model directory.")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="A new (or empty) directory for the trained model.")
@click.option("--epochs", default=5, show_default=True, type=click.IntRange(min=1))
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=2),
              help="Pairs per step; every other pair in the batch is a negative.")
@click.option("--lr", default=1e-5, show_default=True, type=float,
              help="Peak learning rate (AdamW, warmup then cosine decay). 1e-5 suits a "
                   "pretrained CLIP; training from scratch wants about 1e-3.")
@click.option("--weight-decay", default=0.1, show_default=True, type=float)
@click.option("--val-fraction", default=0.1, show_default=True, type=float,
              help="Share of the images held out for validation.")
@click.option("--seed", default=0, show_default=True, type=int)
@json_option
def finetune(pairs_file: Path, base: str, out: Path, epochs: int, batch_size: int, lr: float,
             weight_decay: float, val_fraction: float, seed: int, as_json: bool) -> None:
    """Fine-tune a CLIP model on (image, caption) pairs, contrastively.

    The loss is CLIP's: symmetric InfoNCE over each batch's image-text similarities,
    with a learnable temperature. A validation split (by image) is held out, and
    recall@1/5/10 text-to-image and image-to-text is printed before and after.
    The saved directory is a sentence-transformers model: point ASSETDB_MODEL at it
    (then `assetdb reembed`, as the vectors of a new model differ).

    \b
    Examples:
      assetdb finetune --pairs captions.jsonl --base clip-ViT-B-32 --out ./my-clip
      assetdb finetune --pairs pairs.csv --base ./my-clip --out ./my-clip-2 \\
          --epochs 10 --batch-size 128 --lr 2e-5
      ASSETDB_MODEL=./my-clip assetdb eval --pairs heldout.jsonl
    """
    from assetdb.training.pairs import load_pairs
    from assetdb.training.trainer import TrainConfig, format_recall
    from assetdb.training.trainer import finetune as run_finetune

    settings = get_settings()
    pairs = load_pairs(pairs_file)
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                         val_fraction=val_fraction, seed=seed, device=settings.device)
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
@json_option
def evaluate(folder: Path | None, pairs_file: Path | None, templates: tuple[str, ...],
             model: str | None, as_json: bool) -> None:
    """Measure a model on labelled images; needs no database.

    With --folder, each image is classified zero-shot among the sub-folder names,
    using prompt templates; prints accuracy (top-1, top-5) overall and per class.
    With --pairs, prints recall@1/5/10 text-to-image and image-to-text (a result
    counts when its caption is the query's caption text).

    \b
    Examples:
      assetdb eval --folder ./animals --template 'a photo of a {}.' --template 'a {}'
      ASSETDB_MODEL=./my-clip assetdb eval --pairs heldout.jsonl --json
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
    encoder = load_model(settings, model)
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
