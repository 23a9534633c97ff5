"""What every dialect shares about errors: an error body, an HTTP status or a stream's error event into the
typed :class:`~engine_clients.EngineError` that says what happened (context window, chat template, an input
kind the model cannot take, a model still loading, ...). Pure: no I/O."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from typing import ClassVar

from ..errors import ChatTemplateError
from ..errors import EngineError
from ..errors import InvalidRequestError
from ..errors import ModelLoadingError
from ..errors import UnsupportedInputError
from ..errors import status_error
from .fixes import with_fix
from .templates import template_fix
from .templates import template_rule_of

__all__ = ["ErrorCodec", "clip", "status_error"]


def clip(data: bytes | str, n: int = 500) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return text if len(text) <= n else text[:n] + "…"


class ErrorCodec:
    """The error half of :class:`~engine_clients.dialects.base.Dialect`: each engine overrides the hooks
    (``error_fields``, ``context_limits``, ``unsupported_inputs``, ``is_loading``) its error bodies need."""

    engine: ClassVar[str] = ""

    def error_fields(self, obj: Any, text: str) -> tuple[str, str | None]:
        """(message, engine error type) from any error body shape the engines use."""
        if isinstance(obj, Mapping):
            err = obj.get("error")
            if isinstance(err, Mapping):
                return str(err.get("message") or err), _str(err.get("type") or err.get("error_type"))
            if isinstance(err, str):
                return err, _str(obj.get("error_type") or obj.get("type"))
            if obj.get("object") == "error" or "message" in obj:
                return str(obj.get("message")), _str(obj.get("type"))
            if "detail" in obj:
                return str(obj["detail"]), None
        if isinstance(obj, list) and obj:
            return self.error_fields(obj[0], text)
        return (text.strip() or "(empty body)"), None

    def context_limits(self, message: str, obj: Any) -> tuple[int | None, int | None] | None:
        """(prompt tokens, limit) when the error says the context window was exceeded, else None."""
        return None

    # (pattern over the error message, input kind or None to take it from the match's first group, fix)
    unsupported_inputs: ClassVar[tuple[tuple[re.Pattern[str], str | None, str], ...]] = ()

    def unsupported_input(
        self, status: int, message: str, error_type: str | None, body: Any
    ) -> UnsupportedInputError | None:
        """The typed error when the engine says it cannot take an input kind (image, audio)."""
        if status < 400:
            return None
        for pattern, kind, fix in self.unsupported_inputs:
            m = pattern.search(message)
            if m:
                found = kind or m.group(1).lower()
                what = "image or audio" if found == "media" else found
                return UnsupportedInputError(
                    f"{message.rstrip('.')}. This server cannot take {what} input: {fix}",
                    kind=found,
                    status_code=status,
                    engine=self.engine,
                    error_type=error_type,
                    body=body,
                )
        return None

    def refuse_input(self, kind: str, where: str) -> UnsupportedInputError:
        """A kind of input the route has no wire format for, refused before sending."""
        return UnsupportedInputError(
            f"{self.engine} takes no {kind} input on {where}", kind=kind, engine=self.engine
        )

    def is_loading(self, message: str, etype: str | None) -> bool:
        """Whether a 503 says the model is loading (waited on) rather than the server being unhealthy."""
        return False

    def parse_error(self, status: int, body: bytes) -> EngineError:
        obj: Any = None
        text = body.decode("utf-8", "replace")
        if body:
            try:
                obj = json.loads(body)
            except ValueError:
                obj = None
        message, etype = self.error_fields(obj, text)
        if not body and status == 401:
            message = "unauthorized: missing or wrong API key"
        unsupported = self.unsupported_input(status, message, etype, obj if obj is not None else clip(text))
        if unsupported is not None:
            return unsupported
        if status == 503 and self.is_loading(message, etype):
            return ModelLoadingError(
                message, status_code=status, engine=self.engine, error_type=etype, body=obj or clip(text)
            )
        context = self.context_limits(message, obj) if status in (400, 413, 422, 500) else None
        if context is None and status in (400, 422, 500):
            # A chat template that raised over the messages (llama.cpp 400 "Unable to generate parser for
            # this template ...", vLLM 400 with the Jinja exception's text, TGI 422 "Template error: ...").
            rule = template_rule_of(message, etype)
            if rule is not None:
                return ChatTemplateError(
                    message,
                    rule=rule,
                    fix=template_fix(rule),
                    status_code=status,
                    engine=self.engine,
                    error_type=etype,
                    body=obj if obj is not None else clip(text),
                )
        return status_error(
            status,
            with_fix(self.engine, message),  # "tools param requires --jinja flag. Fix: start ... --jinja"
            engine=self.engine,
            error_type=etype,
            body=obj if obj is not None else clip(text),
            context=context,
        )

    def event_error(self, obj: Any, default_status: int = 500) -> EngineError:
        """An error object received inside a 200 stream."""
        message, etype = self.error_fields(obj, "")
        status = default_status
        err = obj.get("error") if isinstance(obj, Mapping) else None
        if isinstance(err, Mapping):
            code = err.get("http_status_code", err.get("code"))
            if isinstance(code, int) and 400 <= code < 600:
                status = code
        status = _EVENT_STATUS.get(etype or "", status)
        unsupported = self.unsupported_input(status, message, etype, obj)
        if unsupported is not None:
            return unsupported
        return status_error(
            status,
            with_fix(self.engine, message),
            engine=self.engine,
            error_type=etype,
            body=obj,
            context=self.context_limits(message, obj),
        )

    def unsupported(self, what: str) -> InvalidRequestError:
        return InvalidRequestError(f"{self.engine} does not support {what}", engine=self.engine)


# Error types some engines put in stream error events, mapped to the status they would have had.
_EVENT_STATUS = {
    "validation": 422,
    "overloaded": 429,
    "generation": 424,
    "invalid_request_error": 400,
    "authentication_error": 401,
    "unavailable_error": 503,
    "exceed_context_size_error": 400,
}


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None
