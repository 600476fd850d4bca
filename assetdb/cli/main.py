"""The `assetdb` command. Subcommands live in small modules and import heavy things
(torch, sentence-transformers, SQLAlchemy) only when they run, so --help is instant."""

from __future__ import annotations

import importlib
from typing import Any

import click

from assetdb import __version__

# (module, attribute) of every subcommand, in --help order. Loaded lazily.
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("assetdb.cli.db_cmds", "init"),
    "db": ("assetdb.cli.db_cmds", "db"),
    "ingest": ("assetdb.cli.ingest_cmds", "ingest"),
    "search": ("assetdb.cli.search_cmds", "search"),
    "similar": ("assetdb.cli.search_cmds", "similar"),
    "ask": ("assetdb.cli.ask_cmds", "ask"),
    "stats": ("assetdb.cli.db_cmds", "stats"),
    "concept": ("assetdb.cli.concept_cmds", "concept"),
    "embed-text": ("assetdb.cli.sql_cmds", "embed_text"),
    "sql": ("assetdb.cli.sql_cmds", "sql"),
    "export": ("assetdb.cli.export_cmds", "export"),
    "duplicates": ("assetdb.cli.duplicates_cmds", "duplicates"),
    "serve": ("assetdb.cli.serve_cmds", "serve"),
    "classify": ("assetdb.cli.classify_cmds", "classify"),
    "labels": ("assetdb.cli.classify_cmds", "labels"),
    "moderate": ("assetdb.cli.moderate_cmds", "moderate"),
    "policies": ("assetdb.cli.moderate_cmds", "policies"),
    "worker": ("assetdb.cli.worker_cmds", "worker"),
    "status": ("assetdb.cli.worker_cmds", "status"),
    "retry": ("assetdb.cli.worker_cmds", "retry"),
    "reembed": ("assetdb.cli.reembed_cmds", "reembed"),
    "demo": ("assetdb.cli.demo_cmds", "demo"),
    "finetune": ("assetdb.cli.train_cmds", "finetune"),
    "eval": ("assetdb.cli.train_cmds", "evaluate"),
    "ocr": ("assetdb.cli.ocr_cmds", "ocr"),
    "model": ("assetdb.cli.model_cmds", "model"),
}

SHORT_HELP: dict[str, str] = {
    "init": "Create the database schema (safe to run again).",
    "db": "The database: its URL, and the embedded server.",
    "ingest": "Add image files, folders or globs to the catalogue.",
    "search": "Find assets by what they show and by their words.",
    "similar": "Find assets that look like an asset or an image file.",
    "ask": "Answer a question from the catalogue with an LLM (RAG).",
    "stats": "Counts by status, kind and model; database and model.",
    "concept": "Named text queries stored as vectors, for SQL.",
    "embed-text": "Print a text's query vector for ad-hoc SQL.",
    "sql": "Run one read-only SQL statement and print the result.",
    "export": "Export ids, uris, metadata and embeddings (parquet, csv, npy).",
    "duplicates": "Groups of near-duplicate assets; tag or hide all but a keeper.",
    "serve": "Serve the web search page and the HTTP API.",
    "classify": "Zero-shot labels for the catalogue or one image file.",
    "labels": "Label sets saved by name, applied at ingest.",
    "moderate": "Score assets against a moderation policy; flag or hide.",
    "policies": "Moderation policies stored in the database.",
    "worker": "Embed pending assets; run several, here or on other machines.",
    "status": "Workers, leases, recent failures and re-embed progress.",
    "retry": "Queue failed assets again for the workers.",
    "reembed": "Move the catalogue to a new model with no search downtime.",
    "demo": "Offline demo: generate, ingest and search a shapes catalogue.",
    "finetune": "Fine-tune a CLIP model on (image, caption) pairs.",
    "eval": "Zero-shot accuracy on class folders, or recall@K on pairs.",
    "ocr": "Read the text in catalogued images (OCR), for keyword search.",
    "model": "Export a CLIP model to ONNX (int8 optional) for fast CPU use.",
}


class LazyGroup(click.Group):
    """Loads a subcommand's module only when that subcommand runs, and turns assetdb's
    own errors into one clean line instead of a traceback."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # The listing uses SHORT_HELP, so `assetdb --help` imports no subcommand module.
        with formatter.section("Commands"):
            formatter.write_dl([(name, SHORT_HELP.get(name, "")) for name in COMMANDS])

    def invoke(self, ctx: click.Context) -> Any:
        import os

        from assetdb.errors import AssetdbError

        try:
            return super().invoke(ctx)
        except AssetdbError as exc:
            from assetdb.db.dsn import scrub

            # The last line of defence: no message shows the database password.
            message = scrub(str(exc), os.environ.get("ASSETDB_DATABASE_URL"),
                            os.environ.get("ASSETDB_READONLY_DATABASE_URL"),
                            os.environ.get("ASSETDB_READ_DATABASE_URL"))
            raise click.ClickException(message) from None
        except Exception as exc:
            # A connection lost mid-statement (server killed, disk full) arrives as a
            # SQLAlchemy error whose text holds the statement and its parameters.
            if not type(exc).__module__.startswith(("sqlalchemy", "psycopg")):
                raise
            from assetdb.db.engine import user_message

            message = user_message(exc, os.environ.get("ASSETDB_DATABASE_URL"),
                                   os.environ.get("ASSETDB_READONLY_DATABASE_URL"),
                                   os.environ.get("ASSETDB_READ_DATABASE_URL"))
            if message is None:
                raise
            raise click.ClickException(message) from None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="assetdb")
def cli() -> None:
    """assetdb: a semantic asset manager on PostgreSQL + pgvector.

    Asset metadata and CLIP vectors live in one table, so one query combines SQL
    filters with nearest-neighbour search by text or by example image.

    \b
    Examples (a quick start):
      assetdb init
      assetdb ingest ~/Pictures --recursive
      assetdb search "sunset over a concrete building" -k 5
      assetdb similar 42

    Configuration comes from the environment: ASSETDB_DATABASE_URL (unset: an
    embedded PostgreSQL under ASSETDB_HOME), ASSETDB_MODEL (default clip-ViT-B-32).
    """


def main() -> None:  # pragma: no cover - console entry point alias
    cli()
