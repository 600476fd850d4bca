"""`assetdb classify` and `assetdb labels ...` (zero-shot classification)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from assetdb.catalog.catalogue import Catalog
from assetdb.cli.common import (
    FilteredCommand,
    catalogue_meta,
    filter_options,
    filters_from,
    get_settings,
    json_option,
    load_model,
)
from assetdb.cli.output import LazyProgress, print_json, print_table
from assetdb.errors import AssetdbError

LABELS_HELP = "Labels, comma-separated (repeatable): 'cat,dog,car'."
TEMPLATE_HELP = ("Prompt template with {} where the label goes (repeatable: several are "
                 "ensembled). Default: 'a photo of a {}.'")


def _labels_from(labels_opt: tuple[str, ...], label_file: Path | None) -> list[str] | None:
    """The labels of --labels or --label-file (None when neither is given)."""
    from assetdb.classify.labelling import read_label_file
    from assetdb.classify.zeroshot import check_labels
    from assetdb.search.filters import split_list

    if labels_opt and label_file:
        raise AssetdbError("give either --labels or --label-file, not both")
    if label_file:
        return read_label_file(label_file)
    if labels_opt:
        return check_labels(split_list(labels_opt))
    return None


def _templates(templates: tuple[str, ...]) -> list[str]:
    from assetdb.classify.zeroshot import DEFAULT_TEMPLATES, check_templates

    return check_templates(templates or DEFAULT_TEMPLATES)


@click.command(cls=FilteredCommand)
@click.argument("image", required=False, type=click.Path(path_type=Path))
@click.option("--labels", "labels_opt", multiple=True, metavar="A,B,C", help=LABELS_HELP)
@click.option("--label-file", type=click.Path(path_type=Path),
              help="A text file with one label per line ('#' starts a comment).")
@click.option("--set", "set_name", metavar="NAME",
              help="Use a saved label set (its labels, templates and field).")
@click.option("--template", "templates", multiple=True, metavar="TEMPLATE", help=TEMPLATE_HELP)
@click.option("--field", metavar="NAME",
              help="Store the result under classifications.labels->NAME. Default: 'label'.")
@click.option("--dry-run", is_flag=True, help="Classify and report, but write nothing.")
@filter_options
@json_option
def classify(image: Path | None, labels_opt: tuple[str, ...], label_file: Path | None,
             set_name: str | None, templates: tuple[str, ...], field: str | None,
             dry_run: bool, as_json: bool, **kwargs: Any) -> None:
    """Zero-shot classification: label assets with the closest of several text labels.

    Per asset, the probabilities over the labels are a softmax of the cosine
    similarities times the model's logit scale; with several --template options each
    label's prompt embeddings are averaged (prompt ensembling). The top label, its
    probability and the top 3 are stored under classifications.labels->FIELD (visible in
    `search --json` and in SQL); a summary of counts per label is printed.

    With IMAGE, classify that one file and store nothing.

    \b
    Examples:
      assetdb classify --labels cat,dog,car --field animal --dry-run
      assetdb classify --label-file styles.txt --template "a photo of a {}" \\
          --template "a picture of a {}" --field style --tag product
      assetdb classify --set animals          # a saved set, to the whole catalogue
      assetdb classify ./photo.jpg --labels cat,dog,car
      assetdb sql "SELECT labels->'animal'->>'label', count(*) FROM classifications GROUP BY 1"
    """
    from assetdb.classify import labelling

    settings = get_settings()
    filters = filters_from(kwargs)
    labels = _labels_from(labels_opt, label_file)
    if set_name and labels is not None:
        raise AssetdbError("give one of --labels, --label-file or --set")
    if set_name and (templates or field):
        raise AssetdbError("--set uses the set's templates and field: leave out --template "
                           "and --field, or use --labels")
    if not set_name and labels is None:
        raise AssetdbError("give the labels: --labels 'cat,dog', --label-file FILE or --set NAME")
    if image is not None:
        if field or dry_run or filters != type(filters)():
            raise AssetdbError("classifying one file stores nothing: --field, --dry-run and "
                               "filters apply to the catalogue only")
        if not image.is_file():
            raise AssetdbError(f"{image} is not a file")
        if set_name:
            chosen = _saved_set(settings, set_name)
            labels, template_list = list(chosen.labels), list(chosen.templates)
        else:
            template_list = _templates(templates)
        encoder = load_model(settings)
        rows = labelling.classify_file(encoder, image, labels or [], template_list)
        if as_json:
            print_json({"uri": str(image.resolve()), "probabilities": rows})
        else:
            print_table(rows, ("label", "probability"))
        return

    if not set_name:
        template_list = _templates(templates)
    # Before the model: a database that is down, not initialised, or lacks the set.
    meta = catalogue_meta(settings)
    if set_name:
        _saved_set(settings, set_name)
    encoder = load_model(settings, meta=meta)
    with LazyProgress("classify", unit="asset") as bar:
        common: dict[str, Any] = dict(filters=filters, dry_run=dry_run, keep_results=as_json,
                                      on_total=bar.on_total, progress=bar.update)
        catalogue = Catalog(settings)
        if set_name:
            report = catalogue.classify(encoder, label_set=set_name, **common)
        else:
            report = catalogue.classify(encoder, labels=labels or [], templates=template_list,
                                        field=field or labelling.DEFAULT_FIELD, **common)
    if as_json:
        print_json(report.as_dict())
        return
    total = report.classified
    rows = [{"label": label, "count": n, "share": f"{100 * n / total:.1f}%" if total else "-"}
            for label, n in sorted(report.counts.items(), key=lambda kv: -kv[1])]
    print_table(rows, ("label", "count", "share"))
    where = f"classifications.labels->'{report.field}'"
    click.echo(f"\n{total} assets classified; " + (
        "dry run: nothing written." if dry_run else f"results stored under {where}."))


def _saved_set(settings: Any, name: str) -> Any:  # noqa: ANN401 - Settings, SavedLabelSet
    from assetdb.classify import labelling

    saved = {s.name: s for s in labelling.list_label_sets(settings)}
    if name not in saved:
        raise AssetdbError(f"no label set named {name!r} (see `assetdb labels list`)")
    return saved[name]


@click.group()
def labels() -> None:
    """Label sets saved by name; enabled sets label new assets at ingest.

    \b
    Examples:
      assetdb labels add animals --labels cat,dog,bird --template "a photo of a {}"
      assetdb labels list
      assetdb classify --set animals        # apply to the existing catalogue
      assetdb labels disable animals
      assetdb labels rm animals
    """


@labels.command("add")
@click.argument("name")
@click.option("--labels", "labels_opt", multiple=True, metavar="A,B,C", help=LABELS_HELP)
@click.option("--label-file", type=click.Path(path_type=Path),
              help="A text file with one label per line ('#' starts a comment).")
@click.option("--template", "templates", multiple=True, metavar="TEMPLATE", help=TEMPLATE_HELP)
@click.option("--field", metavar="FIELD", help="Store results under classifications.labels->FIELD. "
              "Default: the set's name.")
@click.option("--disabled", is_flag=True, help="Save it without applying it at ingest.")
@click.option("--replace", is_flag=True, help="Overwrite a set of the same name.")
@json_option
def labels_add(name: str, labels_opt: tuple[str, ...], label_file: Path | None,
               templates: tuple[str, ...], field: str | None, disabled: bool, replace: bool,
               as_json: bool) -> None:
    """Save a label set NAME; it labels every new asset at ingest unless --disabled.

    \b
    Example:
      assetdb labels add colours --labels red,green,blue --field colour
    """
    from assetdb.classify import labelling

    chosen = _labels_from(labels_opt, label_file)
    if chosen is None:
        raise AssetdbError("give the labels: --labels 'cat,dog' or --label-file FILE")
    saved = labelling.add_label_set(get_settings(), name, chosen, _templates(templates),
                                  field=field, enabled=not disabled, replace=replace)
    if as_json:
        print_json(saved.as_dict())
    else:
        state = "enabled at ingest" if saved.enabled else "disabled"
        click.echo(f"Saved label set {saved.name!r} ({len(saved.labels)} labels, field "
                   f"{saved.field!r}, {state}).")


@labels.command("list")
@json_option
def labels_list(as_json: bool) -> None:
    """List the saved label sets.

    \b
    Example:
      assetdb labels list --json
    """
    from assetdb.classify import labelling

    sets = [s.as_dict() for s in labelling.list_label_sets(get_settings())]
    if as_json:
        print_json(sets)
    else:
        print_table([{**s, "enabled": "yes" if s["enabled"] else "no"} for s in sets],
                    ("name", "field", "enabled", "labels", "templates"))


@labels.command("rm")
@click.argument("name")
def labels_rm(name: str) -> None:
    """Delete the label set NAME (results already stored on assets stay).

    \b
    Example:
      assetdb labels rm colours
    """
    from assetdb.classify import labelling

    labelling.remove_label_set(get_settings(), name)
    click.echo(f"Removed label set {name!r}.")


@labels.command("enable")
@click.argument("name")
def labels_enable(name: str) -> None:
    """Apply the label set NAME to new assets at ingest.

    \b
    Example:
      assetdb labels enable animals
    """
    from assetdb.classify import labelling

    labelling.enable_label_set(get_settings(), name, True)
    click.echo(f"Label set {name!r} enabled.")


@labels.command("disable")
@click.argument("name")
def labels_disable(name: str) -> None:
    """Stop applying the label set NAME at ingest (it stays saved).

    \b
    Example:
      assetdb labels disable animals
    """
    from assetdb.classify import labelling

    labelling.enable_label_set(get_settings(), name, False)
    click.echo(f"Label set {name!r} disabled.")
