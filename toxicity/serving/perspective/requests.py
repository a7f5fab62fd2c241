"""The Perspective API's requests as this server reads them: Google's field names, an unknown field refused
as Google's API refuses it, and caps on what a client may send (and, for a suggestion, have stored)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictStr

from toxicity.serving.schemas import JsonBody

ANALYZE_USAGE = 'send JSON like {"comment": {"text": "a comment"}, "requestedAttributes": {"TOXICITY": {}}}'
SUGGEST_USAGE = (
    'send JSON like {"comment": {"text": "a comment"}, '
    '"attributeScores": {"TOXICITY": {"summaryScore": {"value": 0}}}}'
)


class GoogleShape(BaseModel):
    """A part of a Perspective request: an unknown field is refused, as Google's API refuses it."""

    model_config = ConfigDict(extra="forbid")


def _no_booleans(value):
    if isinstance(value, bool):  # pydantic reads true as 1.0; Google's API refuses it
        raise ValueError("Input should be a number, not true or false")  # noqa: TRY004 (pydantic's type)
    return value


MAX_ID_CHARS = 256  # clientToken, sessionId, communityId
MAX_LANGUAGES = 10
MAX_LANGUAGE_CHARS = 35  # the longest BCP 47 tag in common use is shorter
Number = Annotated[float, BeforeValidator(_no_booleans)]
Probability = Annotated[float, BeforeValidator(_no_booleans), Field(ge=0, le=1)]
Identifier = Annotated[StrictStr, Field(max_length=MAX_ID_CHARS)]
Languages = Annotated[
    list[Annotated[StrictStr, Field(max_length=MAX_LANGUAGE_CHARS)]], Field(max_length=MAX_LANGUAGES)
]


class Comment(GoogleShape):
    text: StrictStr
    type: Literal["PLAIN_TEXT", "HTML", "TEXT_TYPE_UNSPECIFIED"] = "PLAIN_TEXT"


class AttributeRequest(GoogleShape):
    scoreType: Literal["PROBABILITY"] = "PROBABILITY"
    scoreThreshold: Probability | None = None


class CommentRequest(JsonBody, GoogleShape):
    """The fields analyze and suggestscore share."""

    comment: Comment
    context: dict | None = None  # accepted, as Perspective does, and not used
    languages: Languages | None = None
    clientToken: Identifier | None = None
    communityId: Identifier | None = None
    sessionId: Identifier | None = None


class AnalyzeRequest(CommentRequest):
    usage: ClassVar[str] = ANALYZE_USAGE

    requestedAttributes: dict[str, AttributeRequest] = Field(default_factory=dict)
    doNotStore: bool = False  # nothing analyze reads is stored
    spanAnnotations: bool = False  # a span per sentence; without it, one span over the whole comment
    dropUnsupportedAttributes: bool = False  # leave out what cannot be scored rather than refuse it


class Score(GoogleShape):
    value: Probability
    type: Literal["PROBABILITY"] = "PROBABILITY"


class SpanScore(GoogleShape):
    """Google's discovery document: "All SpanScore objects must have begin and end fields set"."""

    begin: int = Field(ge=0)
    end: int = Field(ge=0)
    score: Score


class SuggestedScores(GoogleShape):
    summaryScore: Score | None = None
    spanScores: list[SpanScore] | None = None


class SuggestRequest(CommentRequest):
    usage: ClassVar[str] = SUGGEST_USAGE

    attributeScores: dict[str, SuggestedScores] = Field(default_factory=dict)
