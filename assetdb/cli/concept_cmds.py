"""`assetdb concept add|list|rm`: named text queries for SQL."""

from __future__ import annotations

import click

from assetdb.cli.common import catalogue_meta, get_settings, json_option, load_model
from assetdb.cli.output import print_json, print_table


@click.group()
def concept() -> None:
    """Named text queries stored as vectors, for SQL: assetdb_concept_search(name, k).

    \b
    Example:
      assetdb concept add red-sneakers "red sneakers" --template "a photo of {}"
      psql "$(assetdb db url)" -c "SELECT * FROM assetdb_concept_search('red-sneakers', 5)"
    """


@concept.command("add")
@click.argument("name")
@click.argument("text")
@click.option("-t", "--template", "templates", multiple=True, metavar="TEMPLATE",
              help="Prompt template with {} for the text, e.g. 'a photo of {}'. Repeatable: "
                   "the prompts' vectors are averaged (prompt ensembling).")
@click.option("--replace", is_flag=True, help="Overwrite a concept of the same name.")
@json_option
def concept_add(name: str, text: str, templates: tuple[str, ...], replace: bool,
                as_json: bool) -> None:
    """Embed TEXT with the database's model and store it as NAME.

    NAME: letters, digits, '_', '.', ':' or '-'. CLIP reads at most 77 tokens.

    \b
    Examples:
      assetdb concept add beach "a sandy beach with the sea"
      assetdb concept add sneakers "red sneakers" -t "a photo of {}" -t "a product shot of {}"
    """
    from assetdb.errors import AssetdbError
    from assetdb.sqlsurface.concepts import add_concept, check_name, checked_templates

    # Everything that can be checked without the model is checked before it loads.
    check_name(name)
    if not text.strip():
        raise AssetdbError("the concept text is empty")
    checked_templates(templates)
    settings = get_settings()
    encoder = load_model(settings, meta=catalogue_meta(settings))
    info = add_concept(settings, encoder, name, text, templates, replace=replace)
    if as_json:
        print_json(info.as_dict())
    else:
        click.echo(f"concept {info.name!r} stored ({info.model})")


@concept.command("list")
@json_option
def concept_list(as_json: bool) -> None:
    """List concepts; 'current' is no for a concept made by another model than the
    database's (the SQL functions ignore it until re-embedded).

    \b
    Example:
      assetdb concept list --json
    """
    from assetdb.sqlsurface.concepts import list_concepts

    rows = [c.as_dict() for c in list_concepts(get_settings())]
    if as_json:
        print_json(rows)
        return
    for row in rows:
        row["current"] = "yes" if row["current"] else "no"
    print_table(rows, ("name", "text", "templates", "current", "updated_at"))


@concept.command("rm")
@click.argument("name")
def concept_rm(name: str) -> None:
    """Delete the concept NAME.

    \b
    Example:
      assetdb concept rm red-sneakers
    """
    from assetdb.sqlsurface.concepts import remove_concept

    remove_concept(get_settings(), name)
    click.echo(f"concept {name!r} removed")
