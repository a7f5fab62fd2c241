"""Request bodies: parsed strictly (no duplicate keys, bounded depth, no lone surrogates), validated, and
refused with one JSON line in the HTTP process, before a request reaches a worker."""

from __future__ import annotations

import json
from typing import ClassVar, Literal, NamedTuple

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from starlette.concurrency import run_in_threadpool

from toxicity.inference.scorer import checked_threshold

PREDICT_USAGE = (
    'send JSON like {"texts": ["a comment"], "threshold": 0.5 or "tuned" (optional), "explain": true '
    "(optional: word attributions per tag)}"
)


class Refused(Exception):
    """A request refused with `status` and a one-line reason (raised in the HTTP process only); `detail`:
    the Google error detail the Perspective routes answer with."""

    def __init__(self, status: int, message: str, detail: dict | None = None):
        super().__init__(message)
        self.status, self.detail = status, detail


class Limits(NamedTuple):
    max_texts: int = 64
    max_chars: int = 5000
    tuned: bool = False  # whether the model has tuned thresholds
    max_explained: int = 8  # texts one /predict request may ask to explain (each costs ~1 s of a worker)
    explainable: bool = True  # whether the model served can explain its scores (a checkpoint, not ONNX)


# ------------------------------------------------------------------------------------------ requests
MAX_JSON_DEPTH = 32  # the deepest request shape is 4 levels; deep nesting only costs recursion


def read_json(raw: bytes, usage: str):
    """The body as JSON, refusing what json.loads lets through: duplicate keys (silently last-wins), deep
    nesting (a RecursionError later) and lone surrogates (a UnicodeEncodeError when written back)."""
    if not raw.strip():
        raise Refused(400, f"empty body; {usage}")
    try:
        data = json.loads(raw, object_pairs_hook=_refuse_duplicate_keys)
    except RecursionError:
        raise Refused(400, f"body nests deeper than {MAX_JSON_DEPTH} levels; {usage}") from None
    except ValueError as error:  # invalid JSON or UTF-8, or a duplicate key
        raise Refused(400, f"body is not valid JSON ({error}); {usage}") from None
    _check_shape(data, usage)
    return data


def _refuse_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    keys = [key for key, _ in pairs]
    if len(set(keys)) < len(keys):
        repeated = next(key for key in keys if keys.count(key) > 1)
        raise ValueError(f"key {json.dumps(repeated)} given twice")
    return dict(pairs)


def _check_shape(data, usage: str) -> None:
    """Depth and lone surrogates, walked without recursion."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise Refused(400, f"body nests deeper than {MAX_JSON_DEPTH} levels; {usage}")
        if isinstance(value, dict):
            for key in value:
                _check_text(key, usage)
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, str):
            _check_text(value, usage)


def _check_text(text: str, usage: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            raise Refused(
                400,
                f"body has a lone surrogate ({text[error.start]!a}), which is not text; "
                f"send whole UTF-16 pairs; {usage}",
            ) from None


def parse_body(raw: bytes, model: type[JsonBody], limits: Limits | None = None) -> JsonBody:
    """The body as `model`, checked against `limits` (the server's; the defaults when None)."""
    try:
        return model.model_validate(read_json(raw, model.usage), context={"limits": limits or Limits()})
    except ValidationError as error:
        raise Refused(400, validation_message(error.errors(), model.usage)) from None


PARSED_ON_LOOP_BYTES = 64 * 1024  # a larger body is parsed in a thread, not on the HTTP event loop


async def parse_body_off_loop(raw: bytes, model: type[JsonBody], limits: Limits | None = None) -> JsonBody:
    """parse_body, in a thread when the body is large, so that parsing it does not hold up other
    requests (a 1 MB body of 24,000 spans took over a second)."""
    if len(raw) <= PARSED_ON_LOOP_BYTES:
        return parse_body(raw, model, limits)
    return await run_in_threadpool(parse_body, raw, model, limits)


def limits_of(info: ValidationInfo) -> Limits:
    """The limits parse_body validates against (the defaults for a request built in code)."""
    return (info.context or {}).get("limits") or Limits()


class JsonBody(BaseModel):
    usage: ClassVar[str] = ""  # what to send, said in refusals


class PredictRequest(JsonBody):
    model_config = ConfigDict(extra="forbid")
    usage: ClassVar[str] = PREDICT_USAGE

    texts: list[StrictStr] = Field(min_length=1)
    threshold: float | Literal["tuned"] | None = None
    explain: StrictBool = False

    @field_validator("threshold", mode="before")
    @classmethod
    def _threshold(cls, value, info: ValidationInfo):
        if value is None:
            return None
        if value == "tuned":
            if not limits_of(info).tuned:
                raise Refused(
                    400,
                    "this model has no tuned thresholds (run `toxicity evaluate --split val "
                    "--save-thresholds` on it); give a number such as 0.5",
                )
            return value
        try:
            return checked_threshold(value)
        except (TypeError, ValueError) as error:
            raise Refused(400, str(error)) from None

    @model_validator(mode="after")
    def _within_limits(self, info: ValidationInfo):
        limits = limits_of(info)
        if len(self.texts) > limits.max_texts:
            raise Refused(
                413,
                f"{len(self.texts)} texts in one request, over the limit of {limits.max_texts} "
                "(--max-texts); send them in several requests",
            )
        for position, text in enumerate(self.texts):
            check_length(text, f"texts[{position}]", limits.max_chars)
        if self.explain and not limits.explainable:
            raise Refused(
                400,
                "explain needs the model's checkpoint: this server scores an ONNX export, which has no "
                "gradients; serve the checkpoint (--ckpt), or call ToxicityClassifier.explain()",
            )
        if self.explain and len(self.texts) > limits.max_explained:
            raise Refused(
                413,
                f"{len(self.texts)} texts to explain in one request, over the limit of "
                f"{limits.max_explained} explained texts per request; send fewer texts with explain, or "
                "the rest without it",
            )
        return self


def check_length(text: str, where: str, limit: int) -> None:
    if len(text) > limit:
        raise Refused(
            413,
            f"{where} has {len(text)} characters, over the limit of {limit} (--max-chars); "
            "send a shorter text or split it",
        )


def validation_message(errors, usage: str) -> str:
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    return f"{where or 'body'}: {first.get('msg', 'invalid')}; {usage}"
