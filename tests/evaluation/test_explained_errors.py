"""evaluate --explain-errors N (issue 30): the most confident errors per tag, their words highlighted, in one
offline HTML page linked from the report."""

import re

import numpy as np

from tests.helpers.explain import insult_direction_model
from toxicity.evaluation.eval_sets import EvalRequest
from toxicity.evaluation.evaluator import EvalOptions, evaluate
from toxicity.evaluation.explained_errors import most_confident_errors, write_error_page
from toxicity.inference.scorer import ToxicityClassifier


def test_the_most_confident_errors_come_first_and_only_errors_count():
    labels = np.array([0, 0, 0, 1, 1, 1, 0, 1])
    probs = np.array([0.9, 0.6, 0.2, 0.1, 0.45, 0.8, 0.99, 0.3])
    mistakes = most_confident_errors(labels, probs, 0.5, 2)
    assert [(m.row, m.kind) for m in mistakes] == [
        (6, "false positive"),
        (0, "false positive"),
        (3, "false negative"),
        (7, "false negative"),
    ]
    assert most_confident_errors(labels, probs, 0.5, 0) == []


def no_external_assets(page: str) -> bool:
    return not re.search(r"(src|href)\s*=|https?://|<link|@import|url\(", page)


def test_the_page_highlights_the_words_that_made_each_mistake(tmp_path):
    classifier = ToxicityClassifier(insult_direction_model(["toxic"]), max_length=128)
    texts = ["you are such an idiot, thanks", "a nice <b>table</b> & chairs", "what a lovely day"]
    labels = np.array([[0], [1], [0]])
    probs = classifier.predict_proba(texts)
    assert probs[0, 0] > 0.5 > probs[1, 0]  # a false positive and a false negative to explain
    path = tmp_path / "errors.html"
    explained = write_error_page(path, classifier, texts, labels, probs, ["toxic"], {"toxic": 0.5}, 5, "t")
    page = path.read_text()
    assert explained == 2 and no_external_assets(page)
    assert re.search(r'<span class="w hl"[^>]*>idiot</span>', page)  # the word behind the false alarm
    assert not re.search(r'<span class="w hl"[^>]*>(table|thanks)</span>', page)
    assert "&lt;" in page and "&amp;" in page and "<b>" not in page  # comments are text, never markup
    assert page.index("false positive") < page.index("false negative")


def test_evaluate_explain_errors_writes_the_page_and_links_it_from_the_report(tiny_checkpoint, tmp_path):
    from toxicity.evaluate import main

    folder = tmp_path / "report"
    results = main(["--ckpt", str(tiny_checkpoint), "--output", str(folder), "--explain-errors", "2"])
    page = (folder / "errors.html").read_text()
    assert results.explained_errors == "errors.html" and no_external_assets(page)
    assert "[errors.html](errors.html)" in (folder / "report.md").read_text()
    assert page.count("<h2") == len(results.tags)
    rows = re.findall(r"<tr><td>(false positive|false negative)</td>", page)
    assert len(rows) <= 4 * len(results.tags)


def test_without_the_option_no_page_is_written(tiny_checkpoint, tmp_path):
    results, folder = evaluate(
        EvalOptions(str(tiny_checkpoint), EvalRequest(split="val"), output=str(tmp_path / "r"))
    )
    assert results.explained_errors is None and not (folder / "errors.html").exists()
    assert "errors.html" not in (folder / "report.md").read_text()
