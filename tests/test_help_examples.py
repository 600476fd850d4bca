"""Docs as tests: every command's --help has examples, and every example runs.

Each example line of every help text is run in-process against a seeded catalogue (44
images, so asset 42 exists; files named in the examples, such as ./example.jpg,
policy.toml and ~/Pictures, are made in the working folder). The rule for a line:
- `VAR=value assetdb ...`: run with that environment;
- `a && b`: run each part; `a | b`: run the part before the pipe;
- a line whose program is not assetdb (psql, curl, duckdb): run the `$(assetdb ...)`
  inside it, if any, else nothing;
- `~` is the (seeded) home folder, as the shell would expand it;
- SKIP: commands that run until stopped, or that need what no test catalogue holds.
Adders run first and removers last, so that each example finds what it names.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import click

from tests.conftest import run_cli
from tests.images import noise, solid

SKIP = {
    "serve": "runs until stopped (tests/test_api.py, tests/test_browser.py cover it)",
    "worker": "runs until stopped (tests/test_worker.py runs `worker --once`)",
    "demo": "builds its own 288-image catalogue (tests/test_demo_model.py)",
    "finetune": "trains a model (tests/test_training.py)",
    "eval": "evaluates a trained model on its own data (tests/test_training.py)",
    "db start": "the tests' database is not an embedded server (tests/test_database.py)",
    "db stop": "the tests' database is not an embedded server (tests/test_database.py)",
    "reembed --model": "needs another model than this machine has (tests/test_reembed.py)",
    "ask What is the capacity of this item? --image photo.jpg --llm llava":
        "needs a local Ollama model (tests/test_ask.py asks llm-echo and a test model)",
    "model export": "converts a model with torch, seconds each (tests/test_onnx_backend.py)",
}
EXAMPLES = re.compile(r"^\s*Examples?( \(.*\))?:\s*$")


def commands() -> Iterator[tuple[str, click.Command]]:
    from assetdb.cli.main import cli

    def walk(cmd: click.Command, path: list[str],
             ctx: click.Context) -> Iterator[tuple[str, click.Command]]:
        yield " ".join(path), cmd
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                assert sub is not None
                yield from walk(sub, [*path, name], click.Context(sub, parent=ctx, info_name=name))

    yield from walk(cli, [], click.Context(cli, info_name="assetdb"))


def example_lines(help_text: str) -> list[str]:
    """The lines of a help text's Example(s) block; `\\` continues a line."""
    lines = help_text.splitlines()
    at = next((i for i, line in enumerate(lines) if EXAMPLES.match(line)), None)
    if at is None:
        return []
    out: list[str] = []
    for line in lines[at + 1:]:
        if not line.strip():
            break
        if out and out[-1].endswith("\\"):
            out[-1] = out[-1][:-1].rstrip() + " " + line.strip()
        else:
            out.append(line.strip())
    return out


def runs(line: str) -> list[tuple[dict[str, str], list[str]]]:
    """The assetdb invocations an example line stands for: (environment, arguments)."""
    out = []
    for part in line.split("&&"):
        words = shlex.split(part.split(" | ")[0], comments=True)
        env = {}
        while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
            name, _, value = words.pop(0).partition("=")
            env[name] = value
        if words and words[0] == "assetdb":
            out.append((env, [os.path.expanduser(w) for w in words[1:]]))
        else:
            inner = re.findall(r"\$\((assetdb [^)]*)\)", part)
            out.extend(({}, shlex.split(cmd)[1:]) for cmd in inner)
    return out


def skipped(args: list[str]) -> str | None:
    joined = " ".join(args)
    return next((why for what, why in SKIP.items()
                 if joined == what or joined.startswith(what + " ")), None)


def test_every_command_has_help_with_an_example():
    missing = [path or "assetdb" for path, cmd in commands()
               if not example_lines(cmd.help or "")]
    assert missing == []


def test_the_rule_reads_lines_as_a_shell_would():
    assert runs('assetdb stats --json | jq .by_status') == [({}, ["stats", "--json"])]
    assert runs("psql \"$(assetdb db url)\" -c 'SELECT 1'") == [({}, ["db", "url"])]
    assert runs("curl 'http://127.0.0.1:8000/api/search?q=red'") == []
    assert runs("ASSETDB_MODEL=./m assetdb init  # note") == [({"ASSETDB_MODEL": "./m"},
                                                               ["init"])]
    assert runs("assetdb policies add p.toml && assetdb moderate --apply") == [
        ({}, ["policies", "add", "p.toml"]), ({}, ["moderate", "--apply"])]


def _order(args: list[str]) -> int:
    if "add" in args and "--replace" not in args:
        return 0
    if {"disable", "--abort"} & set(args):
        return 2
    if "rm" in args:
        return 3
    return 1


def seed(folder: Path, model_dir: Path) -> None:
    """What the examples name: assets 1..44 (some tagged product, brand acme), image files,
    a sidecar, a label file, two policies and a model directory."""
    for i in range(44):
        noise(folder / "seed" / f"n{i:02d}.png", seed=i)
    (folder / "seed.csv").write_text("image_path,tags,brand\nseed/n01.png,product,acme\n"
                                     "seed/n02.png,\"product,red\",acme\n")
    result = run_cli("ingest", "seed", "-m", "seed.csv")
    assert result.exit_code == 0, result.output
    solid(folder / "Pictures" / "red.png", (220, 20, 20))
    solid(folder / "shoots" / "2024-05" / "a.png", (20, 20, 220)).rename(
        folder / "shoots" / "2024-05" / "a.jpg")
    (folder / "captions.csv").write_text("image_path,title\nshoots/2024-05/a.jpg,a blue one\n")
    for name in ("example.jpg", "photo.jpg"):
        solid(folder / "x.png", (20, 220, 20)).rename(folder / name)
    (folder / "styles.txt").write_text("photo\ncircle\n")
    (folder / "policy.toml").write_text(
        '[[rules]]\nname = "cars"\ntexts = ["a photo of a car"]\nthreshold = 0.9\n')
    (folder / "strict.toml").write_text(
        '[[rules]]\nname = "dogs"\ntexts = ["a photo of a dog"]\nthreshold = 0.9\n')
    (folder / "models").mkdir()
    (folder / "models" / "my-clip").symlink_to(model_dir)


def test_every_help_example_runs(initialised, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    seed(tmp_path, tiny_model_dir)
    todo = []
    for path, cmd in commands():
        for line in example_lines(cmd.help or ""):
            todo.extend((path, line, env, args) for env, args in runs(line))
    todo.sort(key=lambda t: _order(t[3]))  # stable: the tree's order within each
    ran, failed = 0, []
    for path, line, env, args in todo:
        if skipped(args):
            continue
        with monkeypatch.context() as m:
            for name, value in env.items():
                m.setenv(name, value)
            result = run_cli(*args)
        if result.exit_code != 0:
            failed.append(f"`assetdb {path} --help`: {line}\n{result.output}")
        ran += 1
    assert failed == [], "\n\n".join(failed)
    assert ran >= 40
