"""The Perspective API's `comments:analyze` route, scored in the same workers and batches as /predict."""

from __future__ import annotations

from fastapi import Request
from litserve.server import RegularRequestHandler

from toxicity.serving.api import read_body, score
from toxicity.serving.schemas import AnalyzeRequest, PredictRequest, Refused, check_length, parse_body

PERSPECTIVE_PATH = "/v1alpha1/comments:analyze"


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
    offered = ", ".join(attributes)

    async def analyze(request: Request) -> dict:
        body = parse_body(await read_body(request, read_timeout), AnalyzeRequest)
        requested = body.requestedAttributes
        if not requested:
            raise Refused(400, f"requestedAttributes is empty; ask for at least one of {offered}")
        unknown = [name for name in requested if name not in attributes]
        if unknown:
            raise Refused(400, f"this model has no attribute {', '.join(unknown)}; it has {offered}")
        if body.languages and "en" not in {language.lower().split("-")[0] for language in body.languages}:
            raise Refused(400, f"languages {body.languages}: this model scores English only; ask for ['en']")
        text = body.comment.text
        check_length(text, "comment.text")
        result = await score(handler, PredictRequest(texts=[text]))
        probabilities = list(result["probabilities"][0].values())
        scores = {}
        for name, options in requested.items():
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
