"""The Google API discovery document of the Perspective API (commentanalyzer v1alpha1), pointing at this
server, so that Google's API clients build a Perspective client from it
(`discoveryServiceUrl=<server>/$discovery/rest?version=v1alpha1`)."""

from __future__ import annotations

DISCOVERY_PATH = "/$discovery/rest"
VERSION = "v1alpha1"


def discovery_document(root_url: str) -> dict:
    """`root_url` ends with a slash, as in Google's documents."""
    return {
        "kind": "discovery#restDescription",
        "discoveryVersion": "v1",
        "id": f"commentanalyzer:{VERSION}",
        "name": "commentanalyzer",
        "version": VERSION,
        "title": "Perspective Comment Analyzer API (served by toxicity)",
        "description": "Scores comments with this server's model, as the Perspective API does.",
        "protocol": "rest",
        "rootUrl": root_url,
        "servicePath": "",
        "baseUrl": root_url,
        "batchPath": "batch",
        # no `auth` section: the server takes an API key only, and with OAuth scopes listed Google's clients
        # look for Google credentials when no key is given
        "parameters": {
            "key": _string("API key (when the server was started with one)", "query"),
            "alt": _string("Data format for the response", "query", default="json", enum=["json"]),
        },
        "resources": {
            "comments": {
                "methods": {
                    "analyze": _method("analyze", "AnalyzeComment", "Analyzes the provided text."),
                    "suggestscore": _method(
                        "suggestscore", "SuggestCommentScore", "Suggest comment scores as training data."
                    ),
                }
            }
        },
        "schemas": SCHEMAS,
    }


def _method(name: str, schema: str, description: str) -> dict:
    path = f"{VERSION}/comments:{name}"
    return {
        "id": f"commentanalyzer.comments.{name}",
        "path": path,
        "flatPath": path,
        "httpMethod": "POST",
        "description": description,
        "parameters": {},
        "parameterOrder": [],
        "request": {"$ref": f"{schema}Request"},
        "response": {"$ref": f"{schema}Response"},
    }


def _string(description: str, location: str | None = None, **extra) -> dict:
    field = {"type": "string", "description": description, **extra}
    if location:
        field["location"] = location
    return field


def _ref(name: str) -> dict:
    return {"$ref": name}


def _map_of(value: dict) -> dict:
    return {"type": "object", "additionalProperties": value}


def _list_of(item: dict) -> dict:
    return {"type": "array", "items": item}


def _schema(name: str, **properties) -> dict:
    return {"id": name, "type": "object", "properties": properties}


SCHEMAS = {
    "TextEntry": _schema(
        "TextEntry",
        text=_string("The text"),
        type=_string("PLAIN_TEXT or HTML", enum=["TEXT_TYPE_UNSPECIFIED", "PLAIN_TEXT", "HTML"]),
    ),
    "Context": _schema("Context", entries=_list_of(_ref("TextEntry"))),
    "AttributeParameters": _schema(
        "AttributeParameters",
        scoreType=_string("PROBABILITY"),
        scoreThreshold={"type": "number", "format": "float"},
    ),
    "Score": _schema("Score", value={"type": "number", "format": "float"}, type=_string("PROBABILITY")),
    "SpanScore": _schema(
        "SpanScore",
        begin={"type": "integer", "format": "int32"},
        end={"type": "integer", "format": "int32"},
        score=_ref("Score"),
    ),
    "AttributeScores": _schema(
        "AttributeScores", summaryScore=_ref("Score"), spanScores=_list_of(_ref("SpanScore"))
    ),
    "AnalyzeCommentRequest": _schema(
        "AnalyzeCommentRequest",
        comment=_ref("TextEntry"),
        context=_ref("Context"),
        requestedAttributes=_map_of(_ref("AttributeParameters")),
        languages=_list_of(_string("ISO 639-1 code")),
        doNotStore={"type": "boolean"},
        clientToken=_string("Echoed back"),
        sessionId=_string("An opaque session id"),
        communityId=_string("The community the comment comes from"),
        spanAnnotations={"type": "boolean", "description": "A span score per sentence"},
        dropUnsupportedAttributes={
            "type": "boolean",
            "description": "Leave out attributes the model cannot score for this comment instead of refusing",
        },
    ),
    "AnalyzeCommentResponse": _schema(
        "AnalyzeCommentResponse",
        attributeScores=_map_of(_ref("AttributeScores")),
        languages=_list_of(_string("ISO 639-1 code")),
        detectedLanguages=_list_of(_string("ISO 639-1 code")),
        clientToken=_string("The request's clientToken"),
    ),
    "SuggestCommentScoreRequest": _schema(
        "SuggestCommentScoreRequest",
        comment=_ref("TextEntry"),
        context=_ref("Context"),
        attributeScores=_map_of(_ref("AttributeScores")),
        languages=_list_of(_string("ISO 639-1 code")),
        communityId=_string("The community the suggestion comes from"),
        clientToken=_string("Echoed back"),
        sessionId=_string("An opaque session id"),
    ),
    "SuggestCommentScoreResponse": _schema(
        "SuggestCommentScoreResponse",
        detectedLanguages=_list_of(_string("ISO 639-1 code")),
        requestedLanguages=_list_of(_string("ISO 639-1 code")),
        clientToken=_string("The request's clientToken"),
    ),
}
