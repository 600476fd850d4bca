"""`assetdb moderate` and `assetdb policies ...` (moderation by concept similarity)."""

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


def _policies(settings: Any, values: tuple[str, ...]) -> list[Any]:
    """--policy values: policy files, or names of stored policies; none: the stored ones."""
    from assetdb.classify import labelling
    from assetdb.classify.policy import load_policy_file

    if not values:
        return labelling.stored_policies(settings)
    out = []
    for value in values:
        path = Path(value).expanduser()
        if path.exists() or path.suffix.lower() in (".toml", ".yaml", ".yml"):
            out.append(load_policy_file(path))
        else:
            out.append(labelling.get_policy(settings, value))
    return out


def _histogram_lines(entry: dict[str, Any], width: int = 40) -> list[str]:
    peak = max((b["count"] for b in entry["histogram"]), default=0) or 1
    lines = []
    for b in entry["histogram"]:
        bar = "#" * round(width * b["count"] / peak)
        mark = " <- threshold" if b["from"] <= entry["threshold"] < b["to"] else ""
        lines.append(f"  [{b['from']:+.4f}, {b['to']:+.4f})  {bar:<{width}} {b['count']}{mark}")
    top = entry["histogram"][-1]["to"] if entry["histogram"] else None
    if top is not None and entry["threshold"] >= top:
        where = "at the highest score" if entry["threshold"] == top else "above every score"
        lines.append(f"  threshold {entry['threshold']:+.4f} lies {where}")
    elif entry["histogram"] and entry["threshold"] < entry["histogram"][0]["from"]:
        lines.append(f"  threshold {entry['threshold']:+.4f} lies below every score")
    return lines


@click.command(cls=FilteredCommand)
@click.option("--policy", "policy_values", multiple=True, metavar="FILE|NAME",
              help="A policy file (.toml, .yaml) or the name of a stored policy. "
                   "Repeatable. Default: every enabled stored policy.")
@click.option("--apply", is_flag=True,
              help="Store scores and flags on the assets and hide what 'hide' rules flag. "
                   "Without it nothing is written.")
@click.option("--calibrate", is_flag=True,
              help="Print each rule's score distribution (quantiles and a histogram) to "
                   "help choose thresholds. Writes nothing.")
@click.option("--bins", default=10, show_default=True, type=click.IntRange(1, 100),
              help="Histogram bins for --calibrate.")
@click.option("--show-flagged", is_flag=True, help="List every flagged asset, not just counts.")
@filter_options
@json_option
def moderate(policy_values: tuple[str, ...], apply: bool, calibrate: bool, bins: int,
             show_flagged: bool, as_json: bool, **kwargs: Any) -> None:
    """Score every asset against every rule of a moderation policy.

    Reports, per rule, how many assets score at or above its threshold. With --apply
    the scores and flags are stored under classifications.moderation->RULE (visible in
    `search --json` and in SQL) and assets flagged by a 'hide' rule are hidden; an
    asset stays hidden while any stored result of a 'hide' rule flags it, so running a
    policy again with a higher threshold un-hides what it no longer flags. Hidden
    assets are scored too. Filters narrow which assets are scored.

    \b
    Policy file (TOML; YAML with the same keys works too):
      name = "default"                   # optional; else the file name
      [[rules]]
      name = "weapons"
      texts = ["a photo of a gun", "a photo of a rifle"]
      counter_texts = ["a photo of a toy water pistol"]   # optional
      threshold = 0.05
      action = "hide"                    # or "flag" (the default)

    Score: the highest cosine similarity to the texts, minus the highest to the
    counter-texts when there are any. It lies in [-1, 1] without counter-texts and in
    [-2, 2] with them; the threshold must lie in that range. An asset is flagged when
    score >= threshold. Calibrate on your catalogue before applying: CLIP
    similarities of a matching image and text are typically only 0.2 to 0.35.

    \b
    Examples:
      assetdb moderate --policy policy.toml --calibrate
      assetdb moderate --policy policy.toml                # dry run: counts only
      assetdb moderate --policy policy.toml --apply
      assetdb policies add policy.toml --replace && assetdb moderate --apply
      assetdb search "beach" --include-hidden --json       # hidden assets too
    """

    settings = get_settings()
    filters = filters_from(kwargs)
    if apply and calibrate:
        raise AssetdbError("--calibrate writes nothing: leave out --apply")
    meta = catalogue_meta(settings)  # before the model: a mistake is answered at once
    policies = _policies(settings, policy_values)
    encoder = load_model(settings, meta=meta)
    if calibrate:
        entries = Catalog(settings).calibrate(encoder, policies, filters=filters, bins=bins)
        if as_json:
            print_json(entries)
            return
        for entry in entries:
            click.echo(f"rule {entry['rule']} (policy {entry['policy']}, action "
                       f"{entry['action']}, threshold {entry['threshold']:g}): "
                       f"{entry['scored']} assets, {entry['flagged']} at or above the threshold")
            if entry["quantiles"]:
                click.echo("  " + "  ".join(f"{k} {v:+.4f}"
                                            for k, v in entry["quantiles"].items()))
                for line in _histogram_lines(entry):
                    click.echo(line)
            click.echo("")
        return

    with LazyProgress("moderate", unit="asset") as bar:
        report = Catalog(settings).moderate(encoder, policies, filters=filters, apply=apply,
                                            on_total=bar.on_total, progress=bar.update)
    if as_json:
        print_json(report.as_dict())
        return
    print_table([r.__dict__ for r in report.rules],
                ("policy", "rule", "action", "threshold", "flagged", "scored"))
    if show_flagged and report.flagged:
        click.echo("")
        print_table(report.flagged, ("id", "rule", "score", "action", "uri"))
    verb = "hidden" if apply else "would be hidden"
    click.echo(f"\n{report.scored} assets scored; {report.hidden} {verb}.")
    if not apply:
        click.echo("Dry run: nothing written (add --apply to store the flags).")


@click.group()
def policies() -> None:
    """Moderation policies stored in the database; enabled ones apply at ingest.

    \b
    Examples:
      assetdb policies add policy.toml
      assetdb policies list
      assetdb moderate --apply              # every enabled stored policy
      assetdb policies disable policy
      assetdb policies rm policy
    """


@policies.command("add")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--name", help="Store under this name (default: the file's `name`, else its "
                             "file name).")
@click.option("--disabled", is_flag=True, help="Store it without applying it at ingest.")
@click.option("--replace", is_flag=True, help="Overwrite a stored policy of the same name.")
def policies_add(file: Path, name: str | None, disabled: bool, replace: bool) -> None:
    """Validate the policy FILE (.toml, .yaml) and store it.

    Enabled policies score every new asset at ingest, and `assetdb moderate` without
    --policy runs them. See `assetdb moderate --help` for the file format.

    \b
    Example:
      assetdb policies add strict.toml --name default
    """
    from assetdb.classify import labelling
    from assetdb.classify.policy import load_policy_file

    policy = load_policy_file(file, name=name)
    labelling.save_policy(get_settings(), policy, enabled=not disabled, replace=replace)
    state = "disabled" if disabled else "enabled at ingest"
    click.echo(f"Stored policy {policy.name!r} ({len(policy.rules)} rules, {state}).")


@policies.command("list")
@json_option
def policies_list(as_json: bool) -> None:
    """List the stored policies and their rules.

    \b
    Example:
      assetdb policies list --json
    """
    from assetdb.classify import labelling

    stored = labelling.list_policies(get_settings())
    if as_json:
        print_json([{**p.as_dict(), "enabled": enabled} for p, enabled in stored])
        return
    rows = [{"policy": p.name, "enabled": "yes" if enabled else "no", "rule": r.name,
             "action": r.action, "threshold": r.threshold, "texts": list(r.texts),
             "counter_texts": list(r.counter_texts)}
            for p, enabled in stored for r in p.rules]
    print_table(rows, ("policy", "enabled", "rule", "action", "threshold", "texts",
                       "counter_texts"))


@policies.command("show")
@click.argument("name")
def policies_show(name: str) -> None:
    """Print the stored policy NAME as JSON.

    \b
    Example:
      assetdb policies show default
    """
    from assetdb.classify import labelling

    print_json(labelling.get_policy(get_settings(), name).as_dict())


@policies.command("rm")
@click.argument("name")
def policies_rm(name: str) -> None:
    """Delete the stored policy NAME (results already stored on assets stay).

    \b
    Example:
      assetdb policies rm default
    """
    from assetdb.classify import labelling

    labelling.remove_policy(get_settings(), name)
    click.echo(f"Removed policy {name!r}.")


@policies.command("enable")
@click.argument("name")
def policies_enable(name: str) -> None:
    """Apply the stored policy NAME at ingest.

    \b
    Example:
      assetdb policies enable default
    """
    from assetdb.classify import labelling

    labelling.enable_policy(get_settings(), name, True)
    click.echo(f"Policy {name!r} enabled.")


@policies.command("disable")
@click.argument("name")
def policies_disable(name: str) -> None:
    """Stop applying the stored policy NAME at ingest (it stays stored).

    \b
    Example:
      assetdb policies disable default
    """
    from assetdb.classify import labelling

    labelling.enable_policy(get_settings(), name, False)
    click.echo(f"Policy {name!r} disabled.")
