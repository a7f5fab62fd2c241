"""What the summary of a comment:analyze with `spanAnnotations` should be: the model's score of the whole
comment, or a score made from its sentences' scores. Measured on real labelled comments.

    python -m benchmarks.span_summary --ckpt CKPT [--data DIR] [--about "what CKPT is"]

Perspective's own reference example (api_reference.md, the UNSUBSTANTIAL attribute) has a summary of
0.69036055 from spans [0, 31) at 0.52690625 and [32, 55) at 0.9106685: their mean weighted by span length,
to eight digits. Scoring only the sentences costs about the tokens of the comment; scoring the comment as
well costs about twice as many (issue 18's budget is 1.5x). So the question is what a summary made from
sentences loses. Every scored Kaggle test row (jigsaw_sample: test.csv + test_labels.csv) is split into
sentences as the server splits it (toxicity.serving.perspective.text.sentence_spans) and three summaries
are compared by the Kaggle metric (mean column-wise AUROC): `comment` (the whole comment, truncated as the
model truncates it), `span_mean` (the length-weighted mean of the sentences' scores) and `span_max` (the
largest). Writes benchmarks/results/span_summary-<YYYY-MM-DD>-<machine>.json and .md (benchmarks.common).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from benchmarks.common import RESULTS, SHARED_DATA, Run, arguments, table
from toxicity.data.sources import find_kaggle_files, load_kaggle_test
from toxicity.evaluation.metrics import mean_of_defined, roc_auc_or_none
from toxicity.inference.scorer import ToxicityClassifier
from toxicity.serving.perspective.text import sentence_spans
from toxicity.serving.schemas import Limits


def summaries(classifier: ToxicityClassifier, texts: list[str]) -> dict[str, np.ndarray]:
    """Each comment's three summaries, (n_comments, n_tags) each."""
    most = Limits().max_texts  # as the analyze route caps the spans of one comment (default --max-texts)
    spans = [sentence_spans(text, most) or [(0, len(text))] for text in texts]
    sentences = [text[begin:end] for text, pieces in zip(texts, spans) for begin, end in pieces]
    whole = classifier.predict_proba(texts, progress=True)
    ends = np.cumsum([len(pieces) for pieces in spans])[:-1]
    parts = np.split(classifier.predict_proba(sentences, progress=True), ends)
    weights = [np.array([end - begin for begin, end in pieces], dtype=float) for pieces in spans]
    return {
        "comment": whole,
        "span_mean": np.stack([w @ part / w.sum() for w, part in zip(weights, parts)]),
        "span_max": np.stack([part.max(axis=0) for part in parts]),
        "sentences": np.array([len(pieces) for pieces in spans]),
    }


def main(argv: list[str] | None = None) -> None:
    parser = arguments("span_summary", __doc__)
    parser.add_argument("--ckpt", required=True, help="a checkpoint whose tags are the Kaggle six")
    parser.add_argument("--data", type=Path, default=SHARED_DATA / "jigsaw_sample")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--about", default="", help="what the checkpoint is, for the results file")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    run = Run.start("span_summary", argv=argv)
    torch.set_num_threads(args.threads)

    classifier = ToxicityClassifier.from_checkpoint(args.ckpt, device="cpu")
    tags = classifier.tags
    test = load_kaggle_test(find_kaggle_files(args.data), "comment_text", tags)
    scored = summaries(classifier, test["text"].tolist())
    labels = test[tags].to_numpy()
    several = scored["sentences"] > 1

    def auroc(probs: np.ndarray, rows: np.ndarray) -> dict:
        aurocs = {tag: roc_auc_or_none(labels[rows, k], probs[rows, k]) for k, tag in enumerate(tags)}
        per_tag = {tag: value for tag, value in aurocs.items() if value is not None}
        return {"mean": mean_of_defined(list(per_tag.values())), "per_tag": per_tag}

    everyone = np.ones(len(test), dtype=bool)
    results = {
        "checkpoint": str(args.ckpt),
        "about": args.about,
        "data": str(args.data),
        "comments": len(test),
        "with_several_sentences": int(several.sum()),
        "sentences_per_comment_median": float(np.median(scored["sentences"])),
        "summaries": {
            name: {
                "all": auroc(scored[name], everyone),
                "several_sentences": auroc(scored[name], several),
                "mean_abs_difference_to_comment": float(np.abs(scored[name] - scored["comment"]).mean()),
            }
            for name in ("comment", "span_mean", "span_max")
        },
    }
    print(markdown(results, tags, run.date))
    print(f"Wrote {run.write(results, markdown(results, tags, run.date), out=args.output)} and .md")


def markdown(results: dict, tags: list[str], date: str) -> str:
    header = [
        "summary",
        "AUROC, all comments",
        "AUROC, several sentences",
        "mean abs difference to `comment`",
    ]
    cells = [
        [
            name,
            f"{cell['all']['mean']:.4f}",
            f"{cell['several_sentences']['mean']:.4f}",
            f"{cell['mean_abs_difference_to_comment']:.4f}",
            *(f"{cell['all']['per_tag'][tag]:.3f}" if tag in cell["all"]["per_tag"] else "-" for tag in tags),
        ]
        for name, cell in results["summaries"].items()
    ]
    lines = [
        f"# The summary of an analyze request with spans ({date})",
        "",
        (
            f"`python -m benchmarks.span_summary --ckpt {results['checkpoint']}` "
            f"({results['about'] or 'no --about'}); {results['comments']} scored Kaggle test comments "
            f"({results['data']}), {results['with_several_sentences']} of them with more than one sentence "
            f"(median {results['sentences_per_comment_median']:g} sentences). Mean column-wise AUROC (the "
            "Kaggle metric) of three summaries; a tag with no positive among the rows is left out of the mean"
        ),
        "",
        *table([*header, *tags], cells),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
