"""The manual says what the code does: every `toxicity` command written in README.md and docs/ (fenced
blocks and inline code) parses with that command's own parser, fit's against the options LightningCLI
offers; the ones that run offline in seconds (--help, --version) are run; every import in a Python block
works. The rest (training, scoring, serving: minutes, or data and checkpoints the reader has) are parsed only,
and the test says how many of each it saw."""

import argparse
import contextlib
import importlib
import io
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.helpers import ROOT
from toxicity.__main__ import COMMANDS, saved_fit_help

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"```(\w*)\n(.*?)```", re.DOTALL)
INLINE = re.compile(r"`((?:python -m )?toxicity(?:\.\w+)? [^`]*)`")  # not `toxicity.json`: a command
LAUNCHER = re.compile(r"^.*?-m toxicity\.(\w+)")  # torchrun ... -m toxicity.predict: the command after it


def where(path, text: str, offset: int) -> str:
    return f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, offset) + 1}"


def written_commands() -> Iterator[tuple[str, str]]:
    """(file:line, the command as written) for every toxicity command in the docs."""
    for path in DOCS:
        text = path.read_text()
        for block in FENCE.finditer(text):
            if block.group(1) not in ("bash", "sh", ""):
                continue
            for line in block.group(2).replace("\\\n", " ").splitlines():
                command = line.split(" # ")[0].split("&&")[-1].strip()
                if re.search(r"(^|\s)(toxicity|-m toxicity\.?\w*)(\s|$)", command):
                    yield where(path, text, block.start()), command
        for code in INLINE.finditer(text):
            if "<" not in code.group(1):  # `toxicity <command>`: a pattern, not a command
                yield where(path, text, code.start()), code.group(1).replace("\\|", "|")


def arguments(command: str) -> list[str]:
    """`toxicity <name> args` from any spelling (python -m toxicity.<name>, srun, torchrun -m, VAR=...),
    with the elisions of prose removed: [optional parts], `...`, and a|b alternatives (the first)."""
    command = re.sub(r"\[[^\]]*\]", " ", command)
    command = LAUNCHER.sub(r"toxicity \1", command)
    command = re.sub(r"\btoxicity\.(\w+) ", r"toxicity \1 ", command)  # the module spelling of a command
    command = re.sub(r"^.*?\btoxicity\b", "toxicity", command)
    words = [word.split("|")[0] for word in shlex.split(command) if word != "..."]
    return words[1:]


def parse_error(args: list[str]) -> str | None:
    """What the command's parser refuses in `args` (arguments the prose left out are not refused)."""
    if not args or args[0] not in COMMANDS:
        return None if args[:1] in (["--help"], ["--version"]) else f"no command in {args}"
    name, options = args[0], args[1:]
    if name == "fit":
        offered = set(re.findall(r"(?<![\w-])(--[\w.]+|-c)\b", saved_fit_help()))
        unknown = [word for word in options if word.startswith("-") and word.split("=")[0] not in offered]
        return f"fit offers no {unknown}" if unknown else None
    parser = importlib.import_module(f"toxicity.{name}").build_parser()
    offered = {flag for action in all_actions(parser) for flag in action.option_strings}
    unknown = [word.split("=")[0] for word in options if re.match(r"--?[a-z]", word)]
    unknown = [flag for flag in unknown if flag not in offered]
    if unknown:
        return f"{name} offers no {unknown}"
    said = io.StringIO()
    with contextlib.redirect_stderr(said), contextlib.redirect_stdout(io.StringIO()):
        try:
            parser.parse_args(options)
        except SystemExit:
            pass
    error = said.getvalue().strip().splitlines()[-1:] or [""]
    return None if not error[0] or "arguments are required" in error[0] else error[0]


def all_actions(parser) -> list:
    """The parser's actions and its subcommands' (feedback export)."""
    actions = list(parser._actions)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            actions += [sub_action for sub in action.choices.values() for sub_action in sub._actions]
    return actions


def test_every_documented_command_parses_and_the_quick_ones_run():
    commands = list(written_commands())
    refused = [f"{place}: `{command}`: {parse_error(arguments(command))}" for place, command in commands]
    refused = [line for line in refused if not line.endswith(": None")]
    assert not refused, "\n".join(refused)

    quick = sorted(
        {" ".join(arguments(c)) for _, c in commands if arguments(c)[-1:] in (["--help"], ["--version"])}
    )
    for line in quick:
        said = subprocess.run(
            [sys.executable, "-m", "toxicity", *line.split()],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert said.returncode == 0 and said.stdout.strip(), (line, said.stderr[-2000:])
    print(f"{len(commands)} documented commands parsed; run: {quick}; the rest need data, a model or minutes")
    assert len(commands) > 30 and quick


def test_every_import_in_a_python_block_works():
    imports = []
    for path in DOCS:
        text = path.read_text()
        for block in FENCE.finditer(text):
            if block.group(1) == "python":
                imports += [
                    (where(path, text, block.start()), line.strip())
                    for line in block.group(2).splitlines()
                    if re.match(r"\s*(from \S+ import|import) ", line)
                ]
    assert imports
    for place, statement in imports:
        try:
            exec(statement, {})  # noqa: S102 - an import statement written in our own docs
        except ImportError as error:
            pytest.fail(f"{place}: `{statement}`: {error}")
