"""comments:analyze against the published Perspective reference (conversationai/perspectiveapi,
2-api/methods.md, and the field descriptions of the commentanalyzer v1alpha1 discovery document):
per-sentence spans in UTF-16 code units, HTML comments, dropUnsupportedAttributes, detected languages and
their refusals; and the PyPI clients `perspectiveapi` and `PyPerspective`, each pointed at a test server by
its URL alone."""

import httpx
import numpy as np
import pytest

from tests.helpers.server import Server
from tests.helpers.text import utf16_slice
from toxicity.inference.scorer import ToxicityClassifier

ANALYZE = "/v1alpha1/comments:analyze"
KEY = "k3y"
PERSPECTIVE_ERROR = "type.googleapis.com/google.commentanalyzer.v1alpha1.Error"
# the example of the reference's AnalyzeComment section: its spans are [0,31) and [32,56)
EXAMPLE = "What kind of idiot name is foo? Sorry, I like your name."


# a client with Google's address in its code reaches this server by that name (DNS, or a proxy that keeps
# the Host header), so the server must answer to it
GOOGLES_NAME = ("--allowed-hosts", "localhost", "127.0.0.1", "commentanalyzer.googleapis.com")


@pytest.fixture(scope="module")
def keyed(tiny_checkpoint):
    running = Server(
        "--ckpt",
        str(tiny_checkpoint),
        "--api-key-env",
        "TEST_PERSPECTIVE_KEY",
        *GOOGLES_NAME,
        env={"TEST_PERSPECTIVE_KEY": KEY},
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def direct(tiny_checkpoint) -> ToxicityClassifier:
    return ToxicityClassifier.from_checkpoint(tiny_checkpoint, device="cpu")


def analyze(server: Server, body, headers: dict | None = None) -> tuple[int, dict]:
    return server.call(ANALYZE, body, {"x-goog-api-key": KEY, **(headers or {})})


def toxicity(texts: list[str], direct: ToxicityClassifier) -> list[float]:
    return direct.predict_proba(texts)[:, 0].tolist()


def test_span_annotations_score_each_sentence_and_the_summary_is_their_length_weighted_mean(keyed, direct):
    """As in the reference's example: its summary (0.69036055) is its two spans' scores weighted by length."""
    status, body = analyze(
        keyed,
        {
            "comment": {"text": EXAMPLE},
            "languages": ["en"],
            "requestedAttributes": {"TOXICITY": {}, "INSULT": {}},
            "spanAnnotations": True,
        },
    )
    assert status == 200 and body["languages"] == ["en"]
    first, second = toxicity([EXAMPLE[:31], EXAMPLE[32:]], direct)
    summary = (31 * first + 24 * second) / 55
    spans = body["attributeScores"]["TOXICITY"]["spanScores"]
    assert [(span["begin"], span["end"]) for span in spans] == [(0, 31), (32, 56)]
    assert [span["score"]["type"] for span in spans] == ["PROBABILITY"] * 2
    np.testing.assert_allclose([span["score"]["value"] for span in spans], [first, second], atol=1e-5)
    assert body["attributeScores"]["TOXICITY"]["summaryScore"]["value"] == pytest.approx(summary, abs=1e-5)
    assert len(body["attributeScores"]["INSULT"]["spanScores"]) == 2


def test_without_span_annotations_one_span_covers_the_comment(keyed, direct):
    """spanAnnotations defaults to false in the reference; clients such as PyPerspective read one span."""
    text = "Thanks for the fix 😀. You are a stupid idiot though."
    status, body = analyze(keyed, {"comment": {"text": text}, "requestedAttributes": {"TOXICITY": {}}})
    scores = body["attributeScores"]["TOXICITY"]
    assert status == 200 and scores["spanScores"] == [
        {"begin": 0, "end": len(text) + 1, "score": scores["summaryScore"]}  # the emoji is two UTF-16 units
    ]
    assert scores["summaryScore"]["value"] == pytest.approx(toxicity([text], direct)[0], abs=1e-5)


def test_span_offsets_are_utf16_code_units(keyed, direct):
    text = "Great work 👍👍! You are a 🤡 and an idiot. Bye."
    status, body = analyze(
        keyed, {"comment": {"text": text}, "requestedAttributes": {"TOXICITY": {}}, "spanAnnotations": True}
    )
    spans = body["attributeScores"]["TOXICITY"]["spanScores"]
    sentences = [utf16_slice(text, span["begin"], span["end"]) for span in spans]
    assert status == 200 and sentences == ["Great work 👍👍!", "You are a 🤡 and an idiot.", "Bye."]
    np.testing.assert_allclose(
        [span["score"]["value"] for span in spans], toxicity(sentences, direct), atol=1e-5
    )


def test_an_html_comment_is_scored_without_its_markup(keyed, direct):
    html = (
        "<p>Thanks for the <a href='/x'>fix</a>.</p><p>You are a stupid&nbsp;idiot.</p><script>x()</script>"
    )
    request = {"comment": {"text": html, "type": "HTML"}, "requestedAttributes": {"TOXICITY": {}}}
    status, body = analyze(keyed, {**request, "spanAnnotations": True})
    scores = body["attributeScores"]["TOXICITY"]
    # spans are ranges of the HTML as sent, so a client can mark them in it
    assert status == 200 and [html[span["begin"] : span["end"]] for span in scores["spanScores"]] == [
        "Thanks for the <a href='/x'>fix</a>.",
        "You are a stupid&nbsp;idiot.",
    ]
    expected = toxicity(["Thanks for the fix.", "You are a stupid\xa0idiot."], direct)
    np.testing.assert_allclose([span["score"]["value"] for span in scores["spanScores"]], expected, atol=1e-5)
    status, body = analyze(keyed, request)  # without spans: the summary is the text's score
    text = "\nThanks for the fix.\n\nYou are a stupid\xa0idiot.\n"
    summary = body["attributeScores"]["TOXICITY"]["summaryScore"]["value"]
    assert summary == pytest.approx(toxicity([text], direct)[0], abs=1e-5)
    assert toxicity([html], direct)[0] != pytest.approx(summary, abs=1e-3)  # the markup was not scored
    status, body = analyze(keyed, {**request, "comment": {"text": "<p><br/></p>", "type": "HTML"}})
    assert status == 400 and body["error"]["details"][0]["errorType"] == "COMMENT_EMPTY"


def test_drop_unsupported_attributes(keyed, direct):
    request = {"comment": {"text": "you idiot"}, "requestedAttributes": {"TOXICITY": {}, "FLIRTATION": {}}}
    status, body = analyze(keyed, request)
    assert status == 400 and "Unknown requested attribute: FLIRTATION" in body["error"]["message"]
    status, body = analyze(keyed, {**request, "dropUnsupportedAttributes": True})
    assert status == 200 and list(body["attributeScores"]) == ["TOXICITY"]
    only_unknown = {**request, "requestedAttributes": {"FLIRTATION": {}}, "dropUnsupportedAttributes": True}
    assert analyze(keyed, only_unknown) == (
        200,
        {"attributeScores": {}, "languages": ["en"], "detectedLanguages": []},
    )


@pytest.mark.parametrize(
    "text, languages, refused, detected",
    [
        # detected, not assumed; a short comment is scored as English unless the detector is sure it is not
        ("Thanks for fixing the article, great work.", None, None, ["en"]),
        ("hola idiota", None, None, ["zu"]),  # two words: py3langid's best guess is Zulu, at 0.13
        ("du bist so dumm und hässlich", None, "de", ["de"]),
        ("eres un imbécil y un payaso", None, "es", ["es", "fr"]),
        ("du bist so dumm und hässlich", ["en"], None, ["de"]),  # the client knows better: scored
        ("you are such an idiot", ["en", "fr"], "fr", ["en"]),  # every language asked for must be supported
        ("you are such an idiot", ["en-GB"], None, ["en"]),
        ("you idiot", None, None, []),  # nothing at 0.1 or more (Walloon 0.04, English 0.02)
    ],
)
def test_languages_are_detected_and_unsupported_ones_refused(keyed, text, languages, refused, detected):
    request = {"comment": {"text": text}, "requestedAttributes": {"INSULT": {}, "TOXICITY": {}}}
    if languages:
        request["languages"] = languages
    status, body = analyze(keyed, request)
    if refused is None:
        assert status == 200 and body["detectedLanguages"] == detected
        assert body["languages"] == (languages or ["en"]) and set(body["attributeScores"]) == {
            "INSULT",
            "TOXICITY",
        }
        return
    assert status == 400 and body["error"]["status"] == "INVALID_ARGUMENT"
    assert body["error"]["message"].startswith(
        f"Attribute INSULT does not support request languages: {refused}"
    )
    assert body["error"]["details"] == [
        {
            "@type": PERSPECTIVE_ERROR,
            "errorType": "LANGUAGE_NOT_SUPPORTED_BY_ATTRIBUTE",
            "attribute": "INSULT",
        }
    ]
    status, body = analyze(keyed, {**request, "dropUnsupportedAttributes": True})
    assert status == 200 and body["attributeScores"] == {} and body["detectedLanguages"] == detected


def test_the_key_in_googles_header_query_or_ours(keyed):
    request = {"comment": {"text": "hi there"}, "requestedAttributes": {"TOXICITY": {}}}
    assert keyed.call(ANALYZE, request, {"x-goog-api-key": KEY})[0] == 200
    assert keyed.call(ANALYZE, request, {"x-api-key": KEY})[0] == 200
    assert keyed.call(f"{ANALYZE}?key={KEY}", request)[0] == 200
    status, body = keyed.call(ANALYZE, request, {"x-goog-api-key": "wrong"})
    assert status == 400 and body["error"]["details"][0]["reason"] == "API_KEY_INVALID"


# ---------------------------------------------------------------------------------- clients from PyPI
class ToServer(httpx.HTTPTransport):
    """The `perspectiveapi` client posts to Google's URL written into its code: this sends its requests to
    the test server instead, changing nothing but the scheme, host and port (the Host header stays Google's
    name, as when DNS points that name at the server)."""

    def __init__(self, url: str):
        super().__init__()
        self.target = httpx.URL(url)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(
            scheme=self.target.scheme, host=self.target.host, port=self.target.port
        )
        return super().handle_request(request)


def perspectiveapi_client(server: Server, key: str):
    from perspective.blocking import Perspective

    client = Perspective(key)
    client._Perspective__client = httpx.Client(transport=ToServer(server.url))
    return client


@pytest.mark.slow
def test_the_perspectiveapi_client(keyed, direct, tiny_checkpoint):
    from perspective import Attribute

    text = "you are a stupid idiot"
    score = perspectiveapi_client(keyed, KEY).score(
        text, [Attribute.TOXICITY, Attribute.INSULT, Attribute.THREAT]
    )
    expected = direct.predict_proba([text])[0]
    tags = list(direct.tags)
    assert score.toxicity == pytest.approx(expected[tags.index("toxic")], abs=1e-5)
    assert score.insult == pytest.approx(expected[tags.index("insult")], abs=1e-5)
    assert score.threat == pytest.approx(expected[tags.index("threat")], abs=1e-5)
    # it may ask for attributes the model lacks (FLIRTATION, SEXUALLY_EXPLICIT): a server started with
    # --drop-unsupported-attributes leaves them out rather than refuse the request
    dropping = Server(
        "--ckpt",
        str(tiny_checkpoint),
        "--drop-unsupported-attributes",
        "--api-key-env",
        "TEST_PERSPECTIVE_KEY",
        *GOOGLES_NAME,
        env={"TEST_PERSPECTIVE_KEY": KEY},
    )
    try:
        score = perspectiveapi_client(dropping, KEY).score(text, [Attribute.TOXICITY, Attribute.FLIRTATION])
    finally:
        dropping.stop()
    assert (
        score.toxicity == pytest.approx(expected[tags.index("toxic")], abs=1e-5) and score.flirtation is None
    )


def test_the_pyperspective_client(keyed, direct, monkeypatch):
    from PyPerspective import Perspective as module
    from PyPerspective.errors import InvalidAuthKey

    monkeypatch.setattr(module, "base_url", keyed.url + ANALYZE)
    text = "Thanks for the fix. You are a stupid idiot though."
    comment = module.Perspective(KEY).get_score(text, tests=["TOXICITY", "INSULT"])
    assert comment.requests_langs == ["en"] and comment.detected_langs == ["en"]
    toxic = comment["TOXICITY"]
    assert toxic.score == pytest.approx(direct.predict_proba([text])[0, 0], abs=1e-5)
    assert [str(span) for span in toxic.spans] == [text] and toxic.spans[0].score == toxic.score
    # its key check: an empty POST, whose error.details[0].reason it reads
    with pytest.raises(InvalidAuthKey):
        module.Perspective("wrong")
    with pytest.raises(InvalidAuthKey):  # a missing key: Google's 403 has no details, and it got a KeyError
        module.Perspective(None)
