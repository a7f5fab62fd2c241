"""POST /v1alpha1/comments:suggestscore, the Perspective API's feedback route: the scores a client believes a
comment should have (a moderator's decision, say), stored with the model that served it (feedback_store),
answered in Perspective's shape: `{"clientToken": ...}` (conversationai/perspectiveapi, 2-api/methods.md),
with `requestedLanguages` as Google's discovery document has it when the request gave languages."""

from __future__ import annotations

import logging
from typing import ClassVar, Literal

from fastapi import Request
from pydantic import BaseModel, Field, StrictStr
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from toxicity.serving.api import read_body
from toxicity.serving.feedback_store import FeedbackStore, Suggestion, shown
from toxicity.serving.perspective import ATTRIBUTES, check_comment, empty_comment
from toxicity.serving.schemas import JsonBody, Refused, parse_body
from toxicity.serving.text import utf16_length

log = logging.getLogger(__name__)

SUGGEST_USAGE = (
    'send JSON like {"comment": {"text": "a comment"}, '
    '"attributeScores": {"TOXICITY": {"summaryScore": {"value": 0}}}}'
)


class Score(BaseModel):
    value: float = Field(ge=0, le=1)
    type: Literal["PROBABILITY"] = "PROBABILITY"


class SpanScore(BaseModel):
    """Google's discovery document: "All SpanScore objects must have begin and end fields set"."""

    begin: int = Field(ge=0)
    end: int = Field(ge=0)
    score: Score


class SuggestedScores(BaseModel):
    summaryScore: Score | None = None
    spanScores: list[SpanScore] | None = None


class SuggestedComment(BaseModel):
    text: StrictStr
    type: Literal["PLAIN_TEXT", "HTML"] = "PLAIN_TEXT"


class SuggestRequest(JsonBody):
    usage: ClassVar[str] = SUGGEST_USAGE

    comment: SuggestedComment
    context: dict | None = None  # accepted, as Perspective does, and not used
    attributeScores: dict[str, SuggestedScores] = Field(default_factory=dict)
    languages: list[StrictStr] | None = None
    communityId: StrictStr | None = None
    clientToken: StrictStr | None = None
    sessionId: StrictStr | None = None


def suggest_route(store: FeedbackStore, tags: list[str], model_sha256: str, read_timeout: float):
    """POST /v1alpha1/comments:suggestscore: checks the suggestion, stores it, echoes the clientToken."""
    attributes = {ATTRIBUTES.get(tag, tag.upper()) for tag in tags}

    async def suggest_score(request: Request) -> dict:
        raw = await read_body(request, read_timeout)
        if not raw.strip():
            raise empty_comment()
        body = parse_body(raw, SuggestRequest)
        check_comment(body.comment.text)
        scores = suggested_scores(body, attributes)
        suggestion = Suggestion(
            comment=body.comment.text,
            attribute_scores=scores,
            model_sha256=model_sha256,
            comment_type=body.comment.type,
            languages=body.languages,
            community_id=body.communityId,
            client_token=body.clientToken,
            session_id=body.sessionId,
        )
        try:
            await run_in_threadpool(store.add, suggestion)
        except SQLAlchemyError:
            log.exception("storing a suggestion in %s failed", shown(store.url))
            raise Refused(
                503, "the suggestion could not be stored; see the server log, and send it again"
            ) from None
        response = {}
        if body.languages:
            response["requestedLanguages"] = body.languages
        if body.clientToken is not None:
            response["clientToken"] = body.clientToken
        return response

    return suggest_score


def suggested_scores(body: SuggestRequest, attributes: set[str]) -> dict[str, dict]:
    """The scores as stored: {attribute: {"summaryScore": value, "spanScores": [{begin, end, score}]}}, with
    each refusal naming the field."""
    offered = ", ".join(sorted(attributes))
    if not body.attributeScores:
        raise Refused(400, f"Missing attribute_scores; suggest a score for at least one of {offered}")
    unknown = [name for name in body.attributeScores if name not in attributes]
    if unknown:
        raise Refused(400, f"Unknown attribute: {', '.join(unknown)} (this model has {offered})")
    length, stored = utf16_length(body.comment.text), {}  # spans count UTF-16 code units, as in analyze
    for name, scores in body.attributeScores.items():
        if scores.summaryScore is None and not scores.spanScores:
            raise Refused(400, f"attributeScores.{name}: give a summaryScore, spanScores, or both")
        spans = []
        for position, span in enumerate(scores.spanScores or []):
            begin, end = span.begin, span.end
            if not begin <= end <= length:
                raise Refused(
                    400,
                    f"attributeScores.{name}.spanScores[{position}]: begin {begin} and end {end} must "
                    f"satisfy 0 <= begin <= end <= {length}, the comment's length in UTF-16 code units",
                )
            spans.append({"begin": begin, "end": end, "score": span.score.value})
        summary = scores.summaryScore.value if scores.summaryScore else None
        stored[name] = {"summaryScore": summary, "spanScores": spans}
    return stored
