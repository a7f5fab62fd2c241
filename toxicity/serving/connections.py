"""API keys redacted from uvicorn's access log."""

from __future__ import annotations

import copy
import logging
import re

import uvicorn.config


class RedactKeys(logging.Filter):
    """Hides ?key=... in uvicorn's access log lines (the path is one of the record's arguments)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_key(arg) if isinstance(arg, str) else arg for arg in record.args)
        return True


def redact_key(text: str) -> str:
    return re.sub(r"([?&]key=)[^&\s]*", r"\1[redacted]", text)


def logging_config() -> dict:
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_keys"] = {"()": RedactKeys}
    config["handlers"]["access"]["filters"] = ["redact_keys"]
    return config
