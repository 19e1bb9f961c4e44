"""JSON bodies: an empty body is `{}`, a body that is not a JSON object is a 400."""

from __future__ import annotations

import json
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser


class JSONBodyParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        raw = stream.read() if stream is not None else b""
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(str(exc)) from None
        if not isinstance(data, dict):
            raise ParseError("the body must be a JSON object")
        return data
