"""The example notebook, run as a user runs it (nbclient), and the text of its outputs."""

import nbformat
from nbclient import NotebookClient

from tests.helpers import ROOT

NOTEBOOK = ROOT / "experiments" / "notebooks" / "load_best_checkpoint.ipynb"


def outputs_text(notebook) -> str:
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text") or output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def run_notebook() -> str:
    """Runs the notebook top to bottom (its kernel inherits this process's environment: set
    TOXICITY_CHECKPOINT first) and returns the text of its outputs."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert not outputs_text(notebook), "commit the notebook without outputs"
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()
    return outputs_text(notebook)
