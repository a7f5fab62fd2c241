"""`toxicity <command>` and `python -m toxicity`: one entry point, a help that answers at once."""

import subprocess
import sys
from importlib.metadata import version

from tests.helpers import ROOT
from toxicity.__main__ import COMMANDS

HEAVY = ("torch", "pytorch_lightning", "transformers", "onnxruntime", "litserve")


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)


def toxicity(*args: str) -> subprocess.CompletedProcess:
    return run(sys.executable, "-m", "toxicity", *args)


def heavy_modules_after(*args: str) -> str:
    """What of HEAVY `toxicity <args>` imported, as the last line of its stderr."""
    check = (
        "import sys; from toxicity.__main__ import main\n"
        f"try:\n    main({list(args)!r})\nexcept SystemExit:\n    pass\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules], file=sys.stderr)"
    )
    return run(sys.executable, "-c", check).stderr.strip().splitlines()[-1]


def test_the_help_lists_every_command_with_a_line_and_imports_no_model_code():
    said = toxicity("--help")
    assert said.returncode == 0
    for name in ("fit", "predict", "evaluate", "baseline", "compare", "export", "serve", "feedback"):
        assert f"  {name} " in said.stdout and name in COMMANDS
    assert heavy_modules_after("--help") == "[]"


def test_each_commands_help_imports_no_model_code():
    for name in COMMANDS:
        assert heavy_modules_after(name, "--help") == "[]", name


def test_version_and_a_mistyped_command():
    assert toxicity("--version").stdout.strip() == f"toxicity {version('toxicity')}"
    typo = toxicity("predcit", "--ckpt", "x")
    assert typo.returncode == 2 and "did you mean `toxicity predict`?" in typo.stderr
    assert toxicity().returncode == 2  # no command: the list, and the status of a usage error


def test_a_command_runs_as_its_module_does(tmp_path):
    missing = tmp_path / "missing.sqlite"
    args = ("export", "--feedback-db", str(missing), "--output", str(tmp_path / "out.csv"))
    one = toxicity("feedback", *args)
    module = run(sys.executable, "-m", "toxicity.feedback", *args)
    assert one.returncode == module.returncode == 2 and one.stderr == module.stderr
    assert f"{missing} does not exist" in one.stderr


def test_fit_reaches_lightningcli_with_its_own_options():
    said = toxicity("fit", "--help")
    assert said.returncode == 0
    assert "--trainer.max_epochs" in said.stdout and "--data.data_path" in said.stdout


def test_fits_saved_help_is_lightningclis_live_one():
    """`toxicity fit --help` prints a saved copy (LightningCLI imports the models: seconds); it must say
    what the live help says, word for word (line breaks aside: they follow the demo file's path)."""
    import os

    from toxicity.__main__ import LIVE_HELP_VARIABLE, saved_fit_help

    live = subprocess.run(
        [sys.executable, "-m", "toxicity", "fit", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, LIVE_HELP_VARIABLE: "1", "COLUMNS": "100"},
    ).stdout
    regenerate = (
        "toxicity/fit_help.txt is out of date: regenerate it as the comment in toxicity/__main__.py says"
    )
    assert saved_fit_help().split() == live.split(), regenerate
    assert heavy_modules_after("fit", "--help") == "[]"


def test_every_command_names_itself_as_toxicity_command(capsys):
    import importlib

    import pytest

    for name in COMMANDS:
        if name == "fit":  # LightningCLI: `toxicity fit` comes from sys.argv[0], set by the dispatcher
            continue
        with pytest.raises(SystemExit):
            importlib.import_module(f"toxicity.{name}").main(["--help"])
        assert capsys.readouterr().out.startswith(f"usage: toxicity {name}")


def test_the_baseline_command_offers_the_baselines_there_are():
    from toxicity.baseline import BASELINES
    from toxicity.evaluation.baseline import MODELS

    assert BASELINES == tuple(sorted(MODELS))


# ------------------------------------------------------------------------------------------ the vocabulary
RETIRED = {"--out", "--input", "--db", "--device", "--ckpt_path", "--ckpt-path"}  # old spellings
WRITERS = ("predict", "evaluate", "baseline", "compare", "export", "feedback")


def parsers():
    """Every argparse command's parser (feedback's `export` subcommand for feedback), by command name."""
    import argparse
    import importlib

    for name in COMMANDS:
        if name == "fit":
            continue
        parser = importlib.import_module(f"toxicity.{name}").build_parser()
        subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        yield name, subcommands[0].choices["export"] if subcommands else parser


def options_of(parser) -> dict:
    return {flag: action for action in parser._actions for flag in action.option_strings}


def test_one_spelling_and_one_default_for_each_shared_notion():
    from toxicity.core.cli import BEST_CHECKPOINT

    seen: dict[str, dict[str, object]] = {}
    for name, parser in parsers():
        options = options_of(parser)
        assert not RETIRED & options.keys(), (name, RETIRED & options.keys())
        for flag in ("--ckpt", "--accelerator", "--threads", "--batch-size", "--overwrite"):
            if flag in options:
                action = options[flag]
                seen.setdefault(flag, {})[name] = (action.default, action.type, action.choices)
        if name in WRITERS:
            assert {"--output", "--overwrite"} <= options.keys(), name
    assert set(seen["--ckpt"]) == {"predict", "evaluate", "export", "serve"}
    assert {default for default, _, _ in seen["--ckpt"].values()} == {BEST_CHECKPOINT}
    for flag, by_command in seen.items():
        assert len(set(by_command.values())) == 1, (flag, by_command)
    fit_help = toxicity("fit", "--help").stdout
    assert "--ckpt CKPT" in fit_help and "--ckpt_path" not in fit_help


def test_each_help_shows_its_defaults_and_an_example(capsys):
    for name, parser in parsers():
        text = parser.format_help()
        assert f"examples:\n  toxicity {name}" in text, name
        for action in parser._actions:
            if action.option_strings and action.default not in (None, False, "==SUPPRESS=="):
                shown = parser._get_formatter()._get_help_string(action) or ""
                assert "default" in shown, (name, action.option_strings)
