"""What many tests share: small comment tables, fit arguments, the tiny model configs, the shared data.
Submodules: server (a real `toxicity.serve` process), processes (ports, process trees), chromium (a headless
browser over DevTools), text (UTF-16 slicing as a JavaScript client does)."""

import os
from pathlib import Path

import pandas as pd
import pytest

from toxicity.core.tags import LABELS

ROOT = Path(__file__).resolve().parents[2]
TINY_ENCODER_YAML = ROOT / "tests" / "fixtures" / "tiny_encoder.yaml"
TINY_TEXT2TEXT_YAML = ROOT / "tests" / "fixtures" / "tiny_text2text.yaml"
SHARED_DATA = Path(os.environ.get("TOXICITY_SHARED_DATA", ROOT.parent / "shared" / "data"))
TINY_ENCODER = {
    "model_type": "bert",
    "vocab_size": 30522,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 512,
}


def needs_shared_data(folder: str):
    return pytest.mark.skipif(
        not (SHARED_DATA / folder).is_dir(),
        reason=f"real data folder {SHARED_DATA / folder} is absent "
        "(set TOXICITY_SHARED_DATA to the shared/data folder)",
    )


def make_comments(n_clean: int = 30, n_toxic: int = 12) -> pd.DataFrame:
    """Distinct comments; toxic rows cycle through the tags so every tag has positives."""
    rows = [
        {
            "id": f"c{k}",
            "comment_text": f"thanks for edit number {k} on the article",
            **dict.fromkeys(LABELS, 0),
        }
        for k in range(n_clean)
    ]
    for k in range(n_toxic):
        tags = dict.fromkeys(LABELS, 0) | {"toxic": 1, LABELS[1 + k % 5]: 1}
        rows.append({"id": f"t{k}", "comment_text": f"you idiot number {k}, " + "stop it " * (k % 4), **tags})
    return pd.DataFrame(rows)


def fit_args(tmp_path: Path, data: Path, *extra: str, config: Path = TINY_ENCODER_YAML) -> list[str]:
    """`python -m toxicity.fit` arguments for the tiny random encoder, writing under `tmp_path`.

    Runs go to tmp_path/logs/toxic-comments/version_N (checkpoints included); the link to the newest
    best checkpoint is tmp_path/checkpoints/best-checkpoint.ckpt.
    """
    return [
        "--config",
        str(config),
        "--data.data_path",
        str(data),
        "--best_link",
        str(tmp_path / "checkpoints" / "best-checkpoint.ckpt"),
        "--trainer.logger.init_args.save_dir",
        str(tmp_path / "logs"),
        *extra,
    ]
