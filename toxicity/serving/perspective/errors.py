"""Google's JSON error object (google.rpc.Status as JSON: https://cloud.google.com/apis/design/errors), as the
Perspective API answers with it, so that its clients read our refusals on the Perspective routes."""

from __future__ import annotations

GOOGLE_PATHS = ("/v1alpha1/", "/$discovery/")  # answered in Google's error shape

# the canonical google.rpc.Code name of each HTTP status (the mapping in Google's error model); 405, 408,
# 413, 415 and 431 have none there, so they keep their HTTP status under the nearest name
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    415: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    431: "INVALID_ARGUMENT",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

PERSPECTIVE_ERROR_TYPE = "type.googleapis.com/google.commentanalyzer.v1alpha1.Error"
ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo"

# Perspective's messages and ErrorType names (conversationai/perspectiveapi, 2-api/limits.md); a request
# error without a type of its own is INVALID_REQUEST there
COMMENT_EMPTY = "COMMENT_EMPTY"
COMMENT_TOO_LONG = "COMMENT_TOO_LONG"
NO_REQUESTED_ATTRIBUTES = "NO_REQUESTED_ATTRIBUTES"
LANGUAGE_NOT_SUPPORTED_BY_ATTRIBUTE = "LANGUAGE_NOT_SUPPORTED_BY_ATTRIBUTE"
INVALID_REQUEST = "INVALID_REQUEST"

MISSING_KEY = "The request is missing a valid API key."
INVALID_KEY = "API key not valid. Please pass a valid API key."


def speaks_google(path: str) -> bool:
    return path.startswith(GOOGLE_PATHS)


def perspective_detail(error_type: str, **fields) -> dict:
    return {"@type": PERSPECTIVE_ERROR_TYPE, "errorType": error_type, **fields}


def invalid_key_detail() -> dict:
    """What Google's front end adds to a wrong key; clients such as PyPerspective read its `reason`."""
    return {
        "@type": ERROR_INFO_TYPE,
        "reason": "API_KEY_INVALID",
        "domain": "googleapis.com",
        "metadata": {"service": "commentanalyzer.googleapis.com"},
    }


def google_error(status: int, message: str, detail: dict | None = None) -> dict:
    if detail is None and status == 400:
        detail = perspective_detail(INVALID_REQUEST)
    body = {"code": status, "message": message, "status": STATUS_NAMES.get(status, "UNKNOWN")}
    if detail is not None:
        body["details"] = [detail]
    return {"error": body}
