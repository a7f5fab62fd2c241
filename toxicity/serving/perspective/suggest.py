"""POST /v1alpha1/comments:suggestscore, the Perspective API's feedback route: the scores a client believes a
comment should have (a moderator's decision, say), stored with the model that served it (feedback_store),
answered in Perspective's shape: `{"clientToken": ...}` (conversationai/perspectiveapi, 2-api/methods.md),
with `requestedLanguages` as Google's discovery document has it when the request gave languages."""

from __future__ import annotations

import logging

from fastapi import Request
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from toxicity.core.tags import ATTRIBUTES
from toxicity.serving.api import read_body
from toxicity.serving.guards import api_key_name
from toxicity.serving.perspective.analyze import comment_to_score, empty_comment
from toxicity.serving.perspective.requests import SuggestRequest
from toxicity.serving.perspective.store import FeedbackStore, Suggestion, shown
from toxicity.serving.perspective.text import most_sentences, utf16_length
from toxicity.serving.schemas import (
    Limits,
    Refused,
    parse_body_off_loop,
)

log = logging.getLogger(__name__)

SUGGEST_PATH = "/v1alpha1/comments:suggestscore"
SPAN_MARGIN = 8  # spans beyond the comment's sentences a suggestion may give (clients split differently)


async def feedback_off(request: Request) -> dict:
    raise Refused(
        404,
        "comments:suggestscore is off on this server: it stores nothing unless its operator starts it "
        "with --feedback-db",
    )


def suggest_route(
    store: FeedbackStore, tags: list[str], model_sha256: str, read_timeout: float, limits: Limits
):
    """POST /v1alpha1/comments:suggestscore: checks the suggestion, stores it, echoes the clientToken."""
    attributes = {ATTRIBUTES.get(tag, tag.upper()) for tag in tags}

    async def suggest_score(request: Request) -> dict:
        raw = await read_body(request, read_timeout)
        if not raw.strip():
            raise empty_comment()
        body = await parse_body_off_loop(raw, SuggestRequest, limits)
        comment_to_score(body.comment.text, body.comment.type, limits.max_chars)  # as analyze refuses
        check_storable(body)
        suggestion = Suggestion(
            comment=body.comment.text,
            attribute_scores=suggested_scores(body, attributes),
            model_sha256=model_sha256,
            comment_type=body.comment.type,
            languages=body.languages,
            community_id=body.communityId,
            client_token=body.clientToken,
            session_id=body.sessionId,
            api_key_name=api_key_name(request),
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


def check_storable(body: SuggestRequest) -> None:
    """Refuses a NUL character in what is stored: PostgreSQL cannot store it in text, and no comment has
    one."""
    fields = {
        "comment.text": body.comment.text,
        "communityId": body.communityId,
        "clientToken": body.clientToken,
        "sessionId": body.sessionId,
        **{f"languages[{n}]": code for n, code in enumerate(body.languages or [])},
    }
    for where, value in fields.items():
        if value and "\x00" in value:
            raise Refused(400, f"{where} has a NUL character (U+0000), which is not text; leave it out")


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
    most_spans = most_sentences(body.comment.text) + SPAN_MARGIN
    for name, scores in body.attributeScores.items():
        if scores.summaryScore is None and not scores.spanScores:
            raise Refused(400, f"attributeScores.{name}: give a summaryScore, spanScores, or both")
        if len(scores.spanScores or []) > most_spans:
            raise Refused(
                400,
                f"attributeScores.{name}.spanScores: {len(scores.spanScores)} spans, more than the comment's "
                f"sentences allow ({most_spans}); give a span per sentence at most",
            )
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
