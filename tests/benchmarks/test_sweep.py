"""benchmarks.sweep: every variant is a valid fit command line, and the table reports mean, spread and Δ."""

import numpy as np
import pandas as pd
import pytest

from benchmarks.run import Split3
from benchmarks.sweep import VARIANTS, LateFusion, summary, variant_arguments
from tests.helpers import ROOT
from toxicity.evaluation.metrics import roc_auc_or_none
from toxicity.fit import make_cli

UNIT = Split3(
    "tiny",
    ["hate"],
    pd.DataFrame({"text": ["a", "b", "c", "d"], "hate": [1, 0, 0, 0]}),
    pd.DataFrame(),
    pd.DataFrame(),
)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_parses_as_fit_arguments(variant, capsys):
    with pytest.raises(SystemExit) as printed:
        make_cli(
            [
                "--config",
                str(ROOT / "experiments" / "cpu_minilm.yaml"),
                *variant_arguments(variant, UNIT),
                "--print_config",
            ]
        )
    assert printed.value.code == 0
    config = capsys.readouterr().out
    if "class_weights" in variant:
        assert "- 3.0" in config  # 3 negatives per positive
    if variant.startswith("ema"):
        assert "EMAWeightAveraging" in config and "decay: 0.998" in config


def test_summary_gives_mean_spread_and_difference_to_base():
    def job(variant, seed, auroc):
        return {"dataset": "tiny", "variant": variant, "seed": seed, "mean_auroc": auroc}

    table = summary(
        [job("base", 1, 0.80), job("base", 2, 0.90), job("pooler", 1, 0.95), job("pooler", 2, 0.97)]
    )
    assert "| tiny | base | 2 | mean_auroc 0.850 ± 0.071 |" in table
    assert "| tiny | pooler | 2 | mean_auroc 0.960 ± 0.014 (+0.110) |" in table


def test_the_hybrid_variant_trains_the_hybrid_family(capsys):
    with pytest.raises(SystemExit):
        make_cli(
            [
                "--config",
                str(ROOT / "experiments" / "cpu_minilm.yaml"),
                *variant_arguments("hybrid", UNIT),
                "--print_config",
            ]
        )
    config = capsys.readouterr().out
    assert "class_path: toxicity.models.hybrid.HybridTagger" in config and "ngram_buckets: 262144" in config
    assert "layer_decay: 0.8" in config  # the recipe's settings stay


class Fixed:
    """A scorer that knows one half of the rows: right there, a coin elsewhere."""

    def __init__(self, labels, knows):
        rng = np.random.default_rng(int(knows.sum()))
        self.scores = np.where(knows, 0.2 + 0.6 * labels, rng.uniform(0.3, 0.7, len(labels)))

    def predict_proba(self, texts, progress=None):
        return self.scores[[int(text) for text in texts]][:, None]


def test_late_fusion_stacks_scorers_that_know_different_rows():
    labels = np.tile([0, 1], 100)
    first_half = np.arange(200) < 100
    scorers = [Fixed(labels, first_half), Fixed(labels, ~first_half)]
    texts = [str(k) for k in range(200)]
    fused = LateFusion(scorers, ["hate"]).fit(texts, labels[:, None]).predict_proba(texts)[:, 0]
    alone = [roc_auc_or_none(labels, scorer.predict_proba(texts)[:, 0]) for scorer in scorers]
    assert roc_auc_or_none(labels, fused) > max(alone) + 0.1


def test_a_late_fusion_job_reports_its_parts_as_base_and_tfidf():
    job = {
        "dataset": "tiny",
        "variant": "late_fusion",
        "seed": 1,
        "mean_auroc": 0.9,
        "parts": {"encoder": {"mean_auroc": 0.8}, "tfidf": {"mean_auroc": 0.7}},
    }
    table = summary([job])
    assert "| tiny | base | 1 | mean_auroc 0.800 ± 0.000 |" in table
    assert "| tiny | late_fusion | 1 | mean_auroc 0.900 ± 0.000 (+0.100) |" in table
    assert "| tiny | tfidf | 1 | mean_auroc 0.700 ± 0.000 (-0.100) |" in table
