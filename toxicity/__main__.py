"""`toxicity <command> [options]`, or `python -m toxicity <command>`: every tool behind one command.

    toxicity fit --config experiments/cpu_minilm.yaml
    toxicity predict --ckpt checkpoints/best-checkpoint.ckpt --input comments.csv --output scores.csv
    toxicity <command> --help

A command's module is imported only when it runs, so `toxicity --help` and `toxicity --version` answer at
once; `python -m toxicity.<command>` keeps working.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Sequence
from importlib import import_module
from pathlib import Path

COMMANDS = {  # name: what it does (the module is toxicity.<name>)
    "fit": "train a tagger (LightningCLI: every option a flag or a YAML key)",
    "predict": "score a CSV / TSV / Parquet file, in one process or sharded over processes and machines",
    "evaluate": "per-tag report, plots and bias metrics; tunes thresholds on the validation split",
    "baseline": "TF-IDF + logistic regression (or the peer) on the rows a fit would use, same report",
    "compare": "finished runs side by side: per-tag F1 and AUROC, loss curves",
    "export": "ONNX (fp32 / int8) or a Hugging Face folder, checked against PyTorch",
    "serve": "HTTP on LitServe: /predict, the Perspective API's routes, a page",
    "feedback": "the suggestions a server stored, as a table fit trains on",
}


# fit's help is LightningCLI's, built from the model classes (torch, Lightning, transformers: seconds to
# import). `toxicity fit --help` prints the copy saved here instead; tests/test_cli.py fails when it differs
# from the live one (regenerate: TOXICITY_LIVE_HELP=1 COLUMNS=100 toxicity fit --help > toxicity/fit_help.txt,
# then put DEMO_PLACEHOLDER for the demo file's path). With plugin families the live help names them.
FIT_HELP = Path(__file__).with_name("fit_help.txt")
DEMO_PLACEHOLDER = "<the embedded demo_comments.csv>"
LIVE_HELP_VARIABLE = "TOXICITY_LIVE_HELP"


def saved_fit_help() -> str | None:
    """fit's help as saved, with this installation's demo path; None when the live one must be built."""
    if (
        os.environ.get(LIVE_HELP_VARIABLE)
        or os.environ.get("TOXICITY_FAMILY_MODULES")
        or not FIT_HELP.is_file()
    ):
        return None
    demo = Path(__file__).parent / "data" / "demo" / "demo_comments.csv"
    return FIT_HELP.read_text().replace(DEMO_PLACEHOLDER, str(demo))


def version() -> str:
    from toxicity import __version__

    return __version__


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {what}" for name, what in COMMANDS.items()]
    return (
        "usage: toxicity <command> [options]    (or: python -m toxicity <command>)\n\n"
        "Multi-label toxic-comment classifiers: train, evaluate, serve.\n\ncommands:\n"
        + "\n".join(lines)
        + "\n\noptions:\n  -h, --help     this list; `toxicity <command> --help` for a command's options\n"
        "  -V, --version  the installed version\n\n"
        "example: toxicity fit --config experiments/cpu_minilm.yaml"
    )


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        sys.exit(0 if argv else 2)
    if argv[0] in ("-V", "--version"):
        print(f"toxicity {version()}")
        return
    name, options = argv[0], argv[1:]
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f"; did you mean `toxicity {close[0]}`?" if close else ""
        print(f"error: no command {name!r} (commands: {', '.join(COMMANDS)}){hint}", file=sys.stderr)
        sys.exit(2)
    if name == "fit" and options in (["-h"], ["--help"]) and saved_fit_help():
        print(saved_fit_help(), end="")
        return
    sys.argv = [f"toxicity {name}", *options]  # what the command's own parser (and LightningCLI) reads
    import_module(f"toxicity.{name}").main()


if __name__ == "__main__":
    main()
