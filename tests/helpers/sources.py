"""Small differently-labelled sources for training on several at once (data.sources)."""

from pathlib import Path

import pandas as pd

from tests.helpers import make_comments

# the tweets table's categorical column onto two of the model's tags (a Davidson-like mapping)
TWEETS_LABELS = {
    "toxic": {"column": "class", "positive": [0, 1], "negative": [2]},
    "identity_hate": {"column": "class", "positive": [0], "negative": [1, 2]},
}


def make_tweets(n: int = 45) -> pd.DataFrame:
    """Tweets with one categorical `class`: 0 hate, 1 offensive, 2 neither (ids w0, w1, ...)."""
    rows = []
    for k in range(n):
        kind = k % 3
        text = (
            ["those people are vermin number {k}", "shut up you fool {k}", "lovely weather today {k}"][kind]
        ).format(k=k)
        rows.append({"id": f"w{k}", "tweet": text, "class": kind})
    return pd.DataFrame(rows)


def write_two_sources(folder: Path) -> list[dict]:
    """A fully labelled Jigsaw-like table and a tweets table labelling two tags; their `data.sources`."""
    wiki, tweets = folder / "wiki.csv", folder / "tweets.csv"
    make_comments(n_clean=40, n_toxic=20).to_csv(wiki, index=False)
    make_tweets().to_csv(tweets, index=False)
    return [
        {"name": "wiki", "path": str(wiki)},
        {
            "name": "tweets",
            "path": str(tweets),
            "text_column": "tweet",
            "labels": TWEETS_LABELS,
            "weight": 2.0,
        },
    ]
