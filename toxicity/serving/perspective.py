"""The Perspective API's routes: `comments:analyze`, scored in the same workers and batches as /predict, its
refusals in Perspective's words and error types, and the discovery document Google's clients build from."""

from __future__ import annotations

from fastapi import Request
from litserve.server import RegularRequestHandler

from toxicity.serving.api import read_body, score
from toxicity.serving.discovery import VERSION, discovery_document
from toxicity.serving.google_errors import (
    COMMENT_EMPTY,
    COMMENT_TOO_LONG,
    LANGUAGE_NOT_SUPPORTED_BY_ATTRIBUTE,
    NO_REQUESTED_ATTRIBUTES,
    perspective_detail,
)
from toxicity.serving.schemas import AnalyzeRequest, PredictRequest, Refused, check_length, parse_body

PERSPECTIVE_PATH = "/v1alpha1/comments:analyze"
SUGGEST_PATH = "/v1alpha1/comments:suggestscore"


# Perspective attribute names of the Jigsaw tags; a model's other tags are offered under their
# upper-cased name
ATTRIBUTES = {
    "toxic": "TOXICITY",
    "severe_toxic": "SEVERE_TOXICITY",
    "obscene": "PROFANITY",
    "threat": "THREAT",
    "insult": "INSULT",
    "identity_hate": "IDENTITY_ATTACK",
}


def analyze_route(handler: RegularRequestHandler, tags: list[str], read_timeout: float):
    """POST /v1alpha1/comments:analyze: scores go through the same workers and batches as /predict."""
    attributes = {ATTRIBUTES.get(tag, tag.upper()): position for position, tag in enumerate(tags)}

    async def analyze(request: Request) -> dict:
        raw = await read_body(request, read_timeout)
        if not raw.strip():  # what Perspective answers to an empty POST (PyPerspective's key check sends one)
            raise empty_comment()
        body = parse_body(raw, AnalyzeRequest)
        check_request(body, attributes)
        text = body.comment.text
        result = await score(handler, PredictRequest(texts=[text]))
        probabilities = list(result["probabilities"][0].values())
        scores = {}
        for name, options in body.requestedAttributes.items():
            value = probabilities[attributes[name]]
            if options.scoreThreshold is None or value >= options.scoreThreshold:
                score_ = {"value": value, "type": "PROBABILITY"}
                scores[name] = {
                    "spanScores": [{"begin": 0, "end": len(text), "score": score_}],
                    "summaryScore": score_,
                }
        response = {"attributeScores": scores, "languages": ["en"], "detectedLanguages": ["en"]}
        if body.clientToken is not None:
            response["clientToken"] = body.clientToken
        return response

    return analyze


def check_request(body: AnalyzeRequest, attributes: dict[str, int]) -> None:
    """Refuses, in Perspective's words and error types, what the model cannot answer."""
    requested, offered = body.requestedAttributes, ", ".join(attributes)
    if not requested:
        raise Refused(
            400,
            f"Missing requested_attributes; ask for at least one of {offered}",
            perspective_detail(NO_REQUESTED_ATTRIBUTES),
        )
    unknown = [name for name in requested if name not in attributes]
    if unknown:
        raise Refused(400, f"Unknown requested attribute: {', '.join(unknown)} (this model has {offered})")
    if body.languages and "en" not in {language.lower().split("-")[0] for language in body.languages}:
        attribute = next(iter(requested))
        raise Refused(
            400,
            f"Attribute {attribute} does not support request languages: {', '.join(body.languages)} "
            "(this model scores English only; ask for ['en'])",
            perspective_detail(LANGUAGE_NOT_SUPPORTED_BY_ATTRIBUTE, attribute=attribute),
        )
    check_comment(body.comment.text)


def check_comment(text: str) -> None:
    if not text:
        raise empty_comment()
    try:
        check_length(text, "comment.text")
    except Refused as too_long:
        # Perspective answers a long comment with 400, not the 413 of /predict
        raise Refused(
            400, f"Comment text too long: {too_long}", perspective_detail(COMMENT_TOO_LONG)
        ) from None


def empty_comment() -> Refused:
    return Refused(400, "Comment must be non-empty.", perspective_detail(COMMENT_EMPTY))


async def suggest_score(request: Request) -> dict:
    """Listed in the discovery document, so a client calling it gets Google's UNIMPLEMENTED, not a 404."""
    raise Refused(501, "comments:suggestscore is not implemented by this server yet")


async def discovery(request: Request) -> dict:
    """GET /$discovery/rest?version=v1alpha1, open without the API key as Google's is."""
    version = request.query_params.get("version")
    if version != VERSION:
        raise Refused(404, f"no discovery document for version {version!r}; ask for ?version={VERSION}")
    return discovery_document(str(request.base_url))
