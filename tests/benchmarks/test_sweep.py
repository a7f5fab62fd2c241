"""benchmarks.sweep: every variant is a valid fit command line, and the table reports mean, spread and Δ."""

import pandas as pd
import pytest

from benchmarks.run import Split3
from benchmarks.sweep import VARIANTS, summary, variant_arguments
from tests.helpers import ROOT
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
