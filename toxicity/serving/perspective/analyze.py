"""The Perspective API's routes: `comments:analyze`, scored in the same workers and batches as /predict, its
refusals in Perspective's words and error types, and the discovery document Google's clients build from."""

from __future__ import annotations

import numpy as np
from fastapi import Request
from fastapi.responses import JSONResponse

from toxicity.core.tags import ATTRIBUTES
from toxicity.serving.api import read_body, score
from toxicity.serving.internals import Workers
from toxicity.serving.perspective import languages
from toxicity.serving.perspective.discovery import VERSION, discovery_document
from toxicity.serving.perspective.errors import (
    COMMENT_EMPTY,
    COMMENT_TOO_LONG,
    LANGUAGE_NOT_SUPPORTED_BY_ATTRIBUTE,
    NO_REQUESTED_ATTRIBUTES,
    perspective_detail,
)
from toxicity.serving.perspective.requests import AnalyzeRequest
from toxicity.serving.perspective.splitter import SentenceSplitter
from toxicity.serving.perspective.text import CommentText, Span, read_comment, utf16_length, utf16_offsets
from toxicity.serving.schemas import (
    Limits,
    PredictRequest,
    Refused,
    check_length,
    parse_body_off_loop,
)

PERSPECTIVE_PATH = "/v1alpha1/comments:analyze"


SCORED = {"en"}  # the languages the model scores (ISO 639-1)


def analyze_route(
    workers: Workers,
    tags: list[str],
    read_timeout: float,
    limits: Limits,
    splitter: SentenceSplitter,
    drop_unsupported: bool = False,
):
    """POST /v1alpha1/comments:analyze: the comment, or with `spanAnnotations` each of its sentences, scored
    in one request to the workers, in the same batches as /predict. `drop_unsupported`: as if every
    request said `dropUnsupportedAttributes: true` (--drop-unsupported-attributes)."""
    attributes = {ATTRIBUTES.get(tag, tag.upper()): position for position, tag in enumerate(tags)}
    languages.load()

    async def analyze(request: Request) -> dict:
        raw = await read_body(request, read_timeout)
        if not raw.strip():  # what Perspective answers to an empty POST (PyPerspective's key check sends one)
            raise empty_comment()
        body = await parse_body_off_loop(raw, AnalyzeRequest, limits)
        check_request(body, attributes)
        comment = comment_to_score(body.comment.text, body.comment.type, limits.max_chars)
        likely = languages.likely_languages(comment.text)
        drop = drop_unsupported or body.dropUnsupportedAttributes
        requested = supported_attributes(body, attributes, drop)
        scored_as, unsupported = language_of(body, likely)
        if unsupported and not drop:
            attribute = next(iter(requested or body.requestedAttributes))
            raise Refused(
                400,
                f"Attribute {attribute} does not support request languages: {', '.join(unsupported)} "
                f"({'asked for' if body.languages else 'detected'}; this model scores English only; send "
                'languages: ["en"] to score it as English, or dropUnsupportedAttributes: true)',
                perspective_detail(LANGUAGE_NOT_SUPPORTED_BY_ATTRIBUTE, attribute=attribute),
            )
        scores = {}
        if requested and not unsupported:
            scores = await attribute_scores(workers, body, comment, requested, attributes, limits, splitter)
        response = {
            "attributeScores": scores,
            "languages": scored_as,
            "detectedLanguages": languages.detected(likely),
        }
        if body.clientToken is not None:
            response["clientToken"] = body.clientToken
        return response

    return analyze


async def attribute_scores(
    workers: Workers,
    body: AnalyzeRequest,
    comment: CommentText,
    requested: list[str],
    attributes: dict[str, int],
    limits: Limits,
    splitter: SentenceSplitter,
) -> dict:
    """The summary and span scores of the requested attributes. With `spanAnnotations` and more than one
    sentence, the sentences go to the workers as the texts of one request (one batch) and the summary is
    their scores' mean weighted by sentence length, as in Perspective's reference example; the comment is
    not scored again (benchmarks/results/span_summary-2026-12-02-cpu.md: the same AUROC, half the tokens)."""
    most = limits.max_texts  # beyond, neighbouring sentences share a span
    spans = await splitter.spans(comment.text, most) if body.spanAnnotations else []
    texts = [comment.text[begin:end] for begin, end in spans] if len(spans) > 1 else [comment.text]
    # built without validation: the comment was checked, and its sentences are no longer than it
    request = PredictRequest.model_construct(texts=texts, threshold=None)
    rows = np.array((await score(workers, request)).probabilities)
    summary = np.average(rows, axis=0, weights=[len(text) for text in texts])
    ranges = source_ranges(comment, spans) if spans else [(0, utf16_length(comment.source))]
    span_rows = rows if len(texts) > 1 else rows[:1].repeat(len(ranges), axis=0)
    scores = {}
    for name in requested:
        options, column = body.requestedAttributes[name], attributes[name]
        value = float(summary[column])
        if options.scoreThreshold is None or value >= options.scoreThreshold:
            scores[name] = {
                "spanScores": [
                    {"begin": begin, "end": end, "score": probability(float(row[column]))}
                    for (begin, end), row in zip(ranges, span_rows)
                ],
                "summaryScore": probability(value),
            }
    return scores


def source_ranges(comment: CommentText, spans: list[Span]) -> list[tuple[int, int]]:
    """Where the spans lie in the comment as the client sent it, in UTF-16 code units."""
    utf16 = utf16_offsets(comment.source)
    return [tuple(map(utf16, comment.source_range(begin, end))) for begin, end in spans]


def probability(value: float) -> dict:
    return {"value": value, "type": "PROBABILITY"}


def check_request(body: AnalyzeRequest, attributes: dict[str, int]) -> None:
    """Refuses, in Perspective's words and error types, a request with nothing to score."""
    if not body.requestedAttributes:
        raise Refused(
            400,
            f"Missing requested_attributes; ask for at least one of {', '.join(attributes)}",
            perspective_detail(NO_REQUESTED_ATTRIBUTES),
        )


def comment_to_score(text: str, text_type: str, max_chars: int) -> CommentText:
    """The comment as the model reads it (an HTML one without its markup); refused, as Perspective does,
    when it is empty, too long, or has no text once read (white space, or markup only). analyze and
    suggestscore both read their comment here, so the store never takes what analyze would refuse."""
    check_comment(text, max_chars)
    comment = read_comment(text, text_type == "HTML")
    if not comment.text.strip():
        raise empty_comment()
    return comment


def supported_attributes(body: AnalyzeRequest, attributes: dict[str, int], drop: bool) -> list[str]:
    """The requested attributes the model has; one it lacks is refused, or left out with `drop`."""
    requested = [name for name in body.requestedAttributes if name in attributes]
    unknown = [name for name in body.requestedAttributes if name not in attributes]
    if unknown and not drop:
        raise Refused(
            400,
            f"Unknown requested attribute: {', '.join(unknown)} (this model has {', '.join(attributes)}; "
            "or send dropUnsupportedAttributes: true to leave it out)",
        )
    return requested


def language_of(body: AnalyzeRequest, likely: list[tuple[str, float]]) -> tuple[list[str], list[str]]:
    """The languages the comment is scored as (Perspective's `languages`: those asked for, else those
    detected), and those of them the model does not score. A comment sent without `languages` is scored
    as English unless the detector is sure it is not (see toxicity.serving.perspective.languages)."""
    if body.languages:
        return body.languages, [code for code in body.languages if languages.primary(code) not in SCORED]
    if languages.surely_not("en", likely):
        return [likely[0][0]], [likely[0][0]]
    return ["en"], []


def check_comment(text: str, max_chars: int) -> None:
    if not text:
        raise empty_comment()
    try:
        check_length(text, "comment.text", max_chars)
    except Refused as too_long:
        # Perspective answers a long comment with 400, not the 413 of /predict
        raise Refused(
            400, f"Comment text too long: {too_long}", perspective_detail(COMMENT_TOO_LONG)
        ) from None


def empty_comment() -> Refused:
    return Refused(400, "Comment must be non-empty.", perspective_detail(COMMENT_EMPTY))


def discovery_route(public_url: str | None):
    """GET /$discovery/rest?version=v1alpha1, open without the API key as Google's is. Its root URL is
    `public_url` (--public-url), else the address the request was sent to (a Host the server allows); the
    answer is never cached, since it depends on the request."""

    async def discovery(request: Request) -> JSONResponse:
        version = request.query_params.get("version")
        if version != VERSION:
            raise Refused(404, f"no discovery document for version {version!r}; ask for ?version={VERSION}")
        root = public_url.rstrip("/") + "/" if public_url else str(request.base_url)
        return JSONResponse(discovery_document(root), headers={"Cache-Control": "no-store"})

    return discovery
