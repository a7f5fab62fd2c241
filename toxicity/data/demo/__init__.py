"""The embedded demo dataset: short comments written for this project from templates.

It exists so that `python -m toxicity.fit` runs out of the box in a few minutes on a CPU. It is a demo,
not a benchmark: its comments are template-made and far easier than real ones. Train on the Kaggle
files (docs/data.md) for real results.
"""

from pathlib import Path

DEMO_CSV = Path(__file__).with_name("demo_comments.csv")
