"""`assetdb ask`: answer a question from the catalogue with an LLM (multimodal RAG)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from assetdb.cli.common import (
    FilteredCommand,
    catalogue_meta,
    filter_options,
    filters_from,
    get_settings,
    json_option,
    with_model,
)
from assetdb.cli.output import print_json

CUT_OFF = "[the answer was cut off here: the LLM failed]"


@click.command(cls=FilteredCommand)
@click.argument("question")
@click.option("--image", "image_path", type=click.Path(path_type=Path),
              help="A photo of the thing asked about: the sources are the assets that "
                   "look most like it (image -> image), and it goes to the LLM too.")
@click.option("--asset", "asset_id", type=int, metavar="ID",
              help="Ask about a catalogued asset: it and the assets most like it.")
@click.option("-k", "--limit", "k", default=2, show_default=True, type=click.IntRange(1, 10),
              help="How many catalogue assets go to the LLM as sources.")
@filter_options
@click.option("--llm", "llm_model", metavar="MODEL",
              help="An llm model id or alias (`llm models` lists them); default: "
                   "ASSETDB_ASK_MODEL, else llm's default model.")
@click.option("--context-only", is_flag=True,
              help="Print the context pack (prompt and images; JSON with --json) and call "
                   "no LLM.")
@json_option
def ask(question: str, image_path: Path | None, asset_id: int | None, k: int,
        llm_model: str | None, context_only: bool, as_json: bool, **kwargs: object) -> None:
    """Answer QUESTION from the catalogue with an LLM, citing the assets it used.

    The sources are the k assets closest to --image (image -> image search on the
    CLIP vectors), to --asset, or else to the question's text, narrowed by the
    filters. Their titles, descriptions, tags and metadata, the question, and the
    images (yours, and each source's as a 512 px JPEG, when the model takes images)
    go to the LLM through the `llm` library (pip install 'assetdb[ask]'), which
    brings its own keys and plugins. A model that takes no images gets the
    descriptions only, with a note. With --context-only nothing leaves the machine.

    \b
    Examples:
      assetdb ask "What is the part number of this item?" --image photo.jpg --context-only
      assetdb ask "Which of these parts are red?" --tag product --context-only --json
      assetdb ask "What does this part weigh?" --asset 42 --llm echo --json
      assetdb ask "What is the capacity of this item?" --image photo.jpg --llm llava
    """
    from assetdb.ask.retrieve import UserImage, check_question
    from assetdb.catalog.catalogue import Catalog
    from assetdb.errors import FilterError

    question = check_question(question, k)
    if image_path is not None and asset_id is not None:
        raise FilterError("give --image or --asset, not both")
    settings = get_settings()
    filters = filters_from(kwargs)
    user_image = None
    if image_path is not None:
        try:
            data = image_path.expanduser().read_bytes()
        except OSError as exc:
            raise click.ClickException(f"cannot read {image_path}: {exc.strerror or exc}"
                                       ) from None
        user_image = UserImage(image_path.name, data, max_pixels=settings.max_image_pixels)
    model = None
    if not context_only:  # a missing LLM is said before the database or CLIP is touched
        from assetdb.ask.models import resolve_model

        model = resolve_model(llm_model)
    catalogue = Catalog(settings)
    pack = _retrieve(settings, catalogue, question, k, filters, user_image, asset_id)
    if context_only:
        if as_json:
            sys.stdout.write(pack.to_json())
        else:
            click.echo(pack.prompt(), nl=False)
            click.echo("\nImages (in the order they would be attached):")
            for image in pack.images():
                click.echo(f"  {image}")
        return
    _answer(settings, pack, model, user_image, as_json)


def _retrieve(settings, catalogue, question, k, filters, user_image, asset_id):  # noqa: ANN001, ANN202, PLR0913
    from assetdb.ask.retrieve import retrieve

    def run(encoder: object) -> object:
        return retrieve(catalogue, question, k=k, filters=filters, image=user_image,
                        encoder=lambda: encoder)

    if asset_id is not None:  # the stored vector is the query: no model to load
        return retrieve(catalogue, question, k=k, filters=filters, asset_id=asset_id)
    meta = catalogue_meta(settings)  # before the model: a mistake is answered at once
    return with_model(settings, meta, run)


def _sources(pack: object) -> list[dict]:
    return [{"id": s.id, "uri": s.uri, "title": s.title, "similarity": s.similarity}
            for s in pack.sources]


def _answer(settings, pack, model, user_image, as_json: bool) -> None:  # noqa: ANN001
    from assetdb.ask.models import start_answer
    from assetdb.ask.retrieve import AskError

    click.echo(f"Asking {model.model_id} with {len(pack.sources)} sources ...", err=True)
    answer = start_answer(settings, pack, model, user_image)  # nothing printed before this
    if answer.note:
        click.echo(f"Note: {answer.note}", err=True)
    if as_json:
        text = "".join(answer.chunks())  # an error here leaves stdout empty
        print_json({"question": pack.question, "answer": text, "model": answer.model,
                    "images_attached": answer.images_attached, "note": answer.note,
                    "sources": _sources(pack)})
        return
    try:
        for chunk in answer.chunks():
            sys.stdout.write(chunk)
            sys.stdout.flush()
    except AskError as exc:
        sys.stdout.write("\n" + CUT_OFF + "\n")
        sys.stdout.flush()
        raise click.ClickException(f"the answer was cut off: {exc}") from None
    click.echo("\n\nSources:")
    for s in pack.sources:
        click.echo(f"  [asset {s.id}] {s.similarity:.3f}  {s.uri}"
                   + (f"  ({s.title})" if s.title else ""))
