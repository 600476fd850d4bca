"""`assetdb demo`."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import click

from assetdb.cli.output import print_json


def _search_json(search: Any) -> dict[str, Any]:  # noqa: ANN401 - demo.walkthrough.Search
    return {"title": search.title, "command": search.command, "expected": search.expected,
            "correct": search.found, "possible": search.possible,
            "available": search.available,
            "hits": [{**h.as_dict(), "correct": search.correct(h), "mark": mark}
                     for h, mark in zip(search.hits, search.marks(), strict=True)]}


def _print_search(n: int, search: Any) -> None:  # noqa: ANN401
    click.echo(f"\n{n}. {search.title}")
    click.echo(f"   $ {search.command}")
    for hit, mark in zip(search.hits, search.marks(), strict=True):
        sim = "  -  " if hit.similarity is None else f"{hit.similarity:.3f}"
        words = getattr(hit, "snippet", None)
        words = f"  [{words.replace('<mark>', '').replace('</mark>', '')}]" if words else ""
        click.echo(f"   {mark} {sim}  #{hit.id:<4} {hit.title}{words}")
    shows = " + ".join(search.expected)
    if search.possible < len(search.hits):
        held = "holds 1 asset" if search.available == 1 else f"holds {search.available} assets"
        click.echo(f"   {search.found}/{search.possible} found: the catalogue {held} with "
                   f"{shows} (· after it: nothing more to find)")
    else:
        click.echo(f"   {search.found}/{len(search.hits)} show {shows}")


@click.command()
@click.option("--home", type=click.Path(path_type=Path),
              help="Where the demo keeps its catalogue and embedded database "
                   "(default: the 'demo' folder under ASSETDB_HOME).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--stop", is_flag=True,
              help="Stop the demo's embedded PostgreSQL server (`assetdb db stop` stops "
                   "only your catalogue's), and do nothing else.")
def demo(home: Path | None, as_json: bool, stop: bool) -> None:
    """A first look, offline: generate a catalogue, ingest it, search it.

    Draws 288 images of coloured shapes (circle, square, triangle, star, cross,
    diamond) on coloured backgrounds, ingests them into an embedded PostgreSQL with
    the small CLIP shipped in the package (trained from scratch on such images), then
    runs text searches, a similar-image search, a filtered search, a keyword and a
    hybrid search over a few posters with printed words (read by OCR), searches in
    French, German, Russian, Chinese and Spanish (the model's text encoder is
    multilingual), zero-shot
    classification and a moderation rule. Every image's title is its true caption,
    and ✓/✗ marks whether a result shows what was asked for (· once every
    right answer the catalogue holds is shown).

    The demo uses its own home and database, never your catalogue. Running it
    again reuses what it built.

    \b
    Examples:
      assetdb demo
      assetdb demo --home /tmp/assetdb-demo --json
      assetdb demo --stop                # stop the demo's database server
    """
    from assetdb.demo import walkthrough

    settings = walkthrough.demo_settings(home)
    # With its home spelled out: it works in any shell, also after the export it suggests.
    stop_command = f"assetdb demo --stop --home {shlex.quote(str(settings.home))}"
    if stop:
        _stop(settings.home, as_json)
        return
    log = (lambda _m: None) if as_json else (lambda m: click.echo(m, err=True))
    log(f"Starting the embedded PostgreSQL in {settings.home} ...")
    walkthrough.start_server(settings)  # before the model: a bad --home is said at once
    log(f"Loading the demo model {walkthrough.MODEL_DIR} ...")
    encoder = walkthrough.load_demo_model(settings)
    report = walkthrough.prepare(settings, encoder, log)
    searches = walkthrough.text_searches(settings, encoder)
    multilingual = walkthrough.language_searches(settings, encoder)
    similar = walkthrough.similar_search(settings)
    filtered = walkthrough.filtered_search(settings, encoder)
    worded = walkthrough.word_searches(settings, encoder)
    held_out = walkthrough.held_out_images(settings)
    classified = walkthrough.zero_shot(encoder, held_out)
    accuracy = sum(c.truth == c.predicted for c in classified) / len(classified)
    rule, stars_flagged, stars, others_flagged = walkthrough.moderation(encoder, held_out)
    log("Ingesting a short video of shape scenes ...")
    video = walkthrough.video_search(settings, encoder)
    dups = walkthrough.near_duplicates(settings, encoder)
    env = (f"export ASSETDB_HOME={shlex.quote(str(settings.home))} "
           f"ASSETDB_MODEL={shlex.quote(settings.model)}")
    if as_json:
        print_json({
            "home": str(settings.home), "model": settings.model, "ingest": report.as_dict(),
            "text_searches": [_search_json(s) for s in searches],
            "language_searches": [_search_json(s) for s in multilingual],
            "similar": _search_json(similar), "filtered": _search_json(filtered),
            "word_searches": [_search_json(s) for s in worded],
            "zero_shot": {"images": len(classified), "accuracy": accuracy,
                          "labels": list(walkthrough.shapes.SHAPES),
                          "results": [c.__dict__ for c in classified]},
            "moderation": {"concept": rule.name, "threshold": rule.threshold,
                           "flagged_of_concept": stars_flagged, "concept_images": stars,
                           "flagged_others": others_flagged,
                           "other_images": len(held_out) - stars},
            "video": None if video is None else {**video.__dict__, "correct": video.correct},
            "near_duplicates": {"source": dups.source, "copies": dups.copies,
                                "reported_at_ingest": dups.reported_at_ingest,
                                "group": dups.group.as_dict() if dups.group else None,
                                "groups": dups.groups, "command": dups.command},
            "environment": env, "stop": stop_command,
        })
        return
    click.echo(f"\nassetdb demo: {report.ingested} images ingested, {report.unchanged} already "
               f"there ({settings.home / 'catalogue'}).")
    click.echo("Each result shows ✓/✗, its similarity, its asset id and its title, which "
               "is the image's true caption (· after every right answer the catalogue "
               "holds).")
    n = 0
    for n, search in enumerate(searches, start=1):
        _print_search(n, search)
    _print_search(n + 1, similar)
    _print_search(n + 2, filtered)
    for search in worded:  # posters with printed words: keyword, then hybrid
        n += 1
        _print_search(n + 2, search)
    for search in multilingual:  # the multilingual text encoder
        n += 1
        _print_search(n + 2, search)
    click.echo(f"\n{n + 3}. Zero-shot classification of {len(classified)} new images into "
               f"{len(walkthrough.shapes.SHAPES)} shapes ({', '.join(walkthrough.shapes.SHAPES)}), "
               f"prompts {' | '.join(walkthrough.shapes.SHAPE_TEMPLATES)}")
    click.echo(f"   accuracy {accuracy:.3f}; a sample:")
    for c in walkthrough.sample_rows(classified):
        mark = "✓" if c.truth == c.predicted else "✗"
        click.echo(f"   {mark} {c.file:<24} true {c.truth:<8} predicted {c.predicted:<8} "
                   f"p={c.probability:.2f}")
    click.echo(f"\n{n + 4}. Moderation rule: flag '{rule.name}' when its similarity minus the "
               f"best other shape's is >= {rule.threshold}")
    click.echo(f"   flagged {stars_flagged}/{stars} {rule.name}s and {others_flagged}/"
               f"{len(held_out) - stars} other images")
    if video is None:
        click.echo(f"\n{n + 5}. Video search by moment: skipped (install the extra: "
                   "pip install 'assetdb[video]')")
    else:
        at = "no moment" if video.moment is None else f"at {_clock(video.moment)}"
        click.echo(f"\n{n + 5}. Video search by moment: {video.query!r}")
        click.echo(f"   $ {video.command}")
        click.echo(f"   {'✓' if video.correct else '✗'} {video.video} {at} (the scene runs "
                   f"{_clock(video.scene[0])}-{_clock(video.scene[1])})")
    click.echo(f"\n{n + 6}. Near-duplicates: {dups.source} copied at {' and '.join(dups.copies)}"
               + (f"; ingest reported {dups.reported_at_ingest} near-duplicates"
                  if dups.reported_at_ingest else ""))
    click.echo(f"   $ {dups.command}")
    for m in dups.group.members if dups.group else []:
        mark = "keeper" if m.keeper else f"{m.similarity:.3f}"
        click.echo(f"   {mark:>6}  #{m.id:<4} {m.width}x{m.height}  {m.bytes} bytes  "
                   f"{m.uri.rsplit('/', 1)[-1]}")
    click.echo(f"   {dups.groups} group(s) in the catalogue at this threshold")
    click.echo(f"""
Try next (in this shell):
  {env}
  assetdb search "a purple star on a yellow background" -k 5
  assetdb search "a large white circle" --tag large --json
  assetdb similar {similar.hits[0].id if similar.hits else 1} -k 5
  assetdb ask "What is the part number of this part?" --asset \
{similar.hits[0].id if similar.hits else 1} --context-only
  assetdb eval --folder {shlex.quote(str(walkthrough.held_out_folder(settings)))} \
--template 'a photo of a {{}}.' --template 'a {{}}'
  assetdb serve                      # the web page and HTTP API (/duplicates too)
  {dups.command} --json
  assetdb sql "SELECT title, metadata->>'shape' AS shape FROM assets LIMIT 5"

The demo's database server keeps running; stop it with:
  {stop_command}
""".rstrip())


def _clock(seconds: float) -> str:
    return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"


def _stop(home: Path, as_json: bool) -> None:
    from assetdb.db import embedded

    stopped = embedded.stop(home)
    if as_json:
        print_json({"home": str(home), "stopped": stopped})
    else:
        click.echo(f"stopped the demo's server in {home}" if stopped
                   else f"the demo's server in {home} is not running")

