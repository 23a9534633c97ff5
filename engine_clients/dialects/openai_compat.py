"""The OpenAI-compatible chat/completions codec shared by vLLM, TGI's Messages API and llama.cpp's ``/v1``
routes. Engines subclass :class:`OpenAICompatDialect` and override only what differs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from typing import ClassVar

from .._requests import ChatRequest
from .._requests import GenerateRequest
from .._requests import NamedToolChoice
from .._requests import ReasoningControls
from .._requests import build_tool_call
from ..errors import InvalidRequestError
from ..types import Completion
from ..types import EngineInfo
from ..types import JsonObject
from ..types import JsonSchema
from ..types import RecoveredCall
from ..types import ResponseFormat
from ..types import TokenInfo
from ..types import Tool
from .adapters import AdapterCodec
from .base import HttpRequest
from .base import StreamDecoder
from .base import normalize_finish
from .base import parse_openai_logprobs
from .base import parse_usage
from .base import same_name
from .base import text_of
from .json_answer import json_answer
from .openai_stream import ChatStreamDecoder
from .openai_stream import CompletionsStreamDecoder
from .openai_stream import _maybe_json as _maybe_json  # re-exported: tgi, llamacpp
from .openai_stream import parse_completion_logprobs
from .reasoning import lstrip_newlines
from .reasoning import split_reasoning
from .toolcall_recovery import recover_tool_calls

__all__ = [
    "ChatStreamDecoder",
    "CompletionsStreamDecoder",
    "OpenAICompatDialect",
    "parse_completion_logprobs",
]

# the thinking controls where OpenAI-compatible servers read them (vLLM, llama.cpp, SGLang); each dialect adds
# its own thinking-budget field
TEMPLATE_THINKING: Mapping[str, tuple[str, ...]] = {
    "thinking": ("chat_template_kwargs", "enable_thinking"),
    "reasoning_effort": ("reasoning_effort",),
}
COMMON_CHAT_PARAMS = {
    **same_name(
        "max_tokens temperature top_p seed stop frequency_penalty presence_penalty logprobs top_logprobs"
    ),
}


class OpenAICompatDialect(AdapterCodec):
    chat_path: ClassVar[str] = "/v1/chat/completions"
    completions_path: ClassVar[str] = "/v1/completions"
    # user-facing sampling name -> wire field, per route; a name missing here is refused before sending
    chat_params: ClassVar[Mapping[str, str]] = COMMON_CHAT_PARAMS
    generate_params: ClassVar[Mapping[str, str]] = COMMON_CHAT_PARAMS
    send_model: ClassVar[bool] = True
    # the message field the engine reads a past assistant turn's thinking from (None: leave it out)
    history_reasoning_field: ClassVar[str | None] = None
    # extra_body keys whose objects are merged into the built body's (not replacing them)
    merged_extra_keys: ClassVar[tuple[str, ...]] = ("chat_template_kwargs",)
    # thinking control (``thinking``, ``reasoning_effort``, ``thinking_budget``) -> wire field path
    reasoning_fields: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    # True: the engine holds a forced (named or "required") tool call's arguments to the tool's schema (the
    # tools going out strict, which vLLM needs for that); None: not known. Reported as
    # EngineInfo.constrained_tool_arguments.
    constrains_named_tools: ClassVar[bool | None] = None
    # True: the engine pins only strict tools' arguments, so a forced call's tools are sent strict (vLLM)
    strict_pins_arguments: ClassVar[bool] = False

    # -- chat ---------------------------------------------------------------------------------------
    def build_chat(self, req: ChatRequest, stream: bool) -> HttpRequest:
        body: dict[str, Any] = {"messages": self.encode_messages(req.messages)}
        model = req.model or self.model
        if model and self.send_model:
            body["model"] = model
        self.apply_sampling(body, req.sampling, self.chat_params, "chat")
        if req.tools:
            self.apply_tools(body, req.tools, req.tool_choice)
        if req.response_format is not None:
            self.apply_chat_format(body, req.response_format)
        if not req.reasoning.empty:
            self.apply_reasoning(body, req.reasoning, req.extra_body)
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        self.apply_adapter(body, req.adapter)
        self.merge_extra(body, req.extra_body)
        http = HttpRequest("POST", self.chat_path, body, stream, self.recoverable_tools(body, req))
        if isinstance(req.response_format, JsonSchema | JsonObject):  # see json_answer
            http.json_format = req.response_format
        return http

    def recoverable_tools(self, body: Mapping[str, Any], req: ChatRequest) -> tuple[str, ...]:
        """The tools offered in ``body`` whose calls may be recovered from the answer's content."""
        on = self.recover_tool_calls if req.recover_tool_calls is None else req.recover_tool_calls
        tools = body.get("tools")
        if not on or not isinstance(tools, list) or body.get("tool_choice") == "none":
            return ()
        fns = (t.get("function") if isinstance(t, Mapping) else None for t in tools)
        return tuple(f["name"] for f in fns if isinstance(f, Mapping) and isinstance(f.get("name"), str))

    def merge_extra(self, body: dict[str, Any], extra: Mapping[str, Any]) -> None:
        for key, value in extra.items():
            mine = body.get(key)
            if key in self.merged_extra_keys and isinstance(mine, dict) and isinstance(value, Mapping):
                body[key] = {**mine, **value}
            else:
                body[key] = value

    def encode_messages(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        field = self.history_reasoning_field
        if field == "reasoning" or not any("reasoning" in m for m in messages):
            return messages
        out = []
        for m in messages:
            if "reasoning" in m:
                m = dict(m)
                thought = m.pop("reasoning")
                if field is not None:
                    m[field] = thought
            out.append(m)
        return out

    # -- reasoning controls -------------------------------------------------------------------------
    def apply_reasoning(self, body: dict[str, Any], ctl: ReasoningControls, extra: Mapping[str, Any]) -> None:
        """Put each thinking control at its ``reasoning_fields`` path; one the route has no field for is
        refused before sending, never dropped."""
        given = _controls(ctl)
        missing = [name for name in given if name not in self.reasoning_fields]
        if missing:
            shown = ", ".join(f"{name}={given[name]!r}" for name in missing)
            raise self.unsupported(f"{shown} on its chat route")
        for name, value in given.items():
            self.set_control(body, extra, self.reasoning_fields[name], value, name)

    def set_control(
        self, body: dict[str, Any], extra: Mapping[str, Any], path: tuple[str, ...], value: Any, name: str
    ) -> None:
        """Set ``body[path...] = value``, refusing an ``extra_body`` that sets the same field otherwise."""
        given: Any = extra
        for part in path:
            given = given.get(part, _MISSING) if isinstance(given, Mapping) else _MISSING
        if given is not _MISSING and given != value:
            raise InvalidRequestError(
                f"{name} conflicts with extra_body {'.'.join(path)}={given!r}", engine=self.engine
            )
        node = body
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value

    def encode_tool(self, tool: Tool) -> dict[str, Any]:
        fn: dict[str, Any] = {"name": tool.name, "parameters": tool.parameters}
        if tool.description is not None:
            fn["description"] = tool.description
        if tool.strict is not None:
            fn["strict"] = tool.strict
        return {"type": "function", "function": fn}

    def apply_tools(
        self, body: dict[str, Any], tools: list[Tool], choice: str | NamedToolChoice | None
    ) -> None:
        forced = isinstance(choice, NamedToolChoice) or choice == "required"
        if forced and self.strict_pins_arguments:
            # the tools a forced call may use go out strict (vLLM pins only strict tools' arguments to their
            # schema), unless the caller set strict either way
            named = choice.name if isinstance(choice, NamedToolChoice) else None
            tools = [
                replace(t, strict=True) if named in (None, t.name) and t.strict is None else t for t in tools
            ]
        body["tools"] = [self.encode_tool(t) for t in tools]
        if isinstance(choice, NamedToolChoice):
            body["tool_choice"] = self.named_tool_choice(choice.name)
        elif choice is not None:
            body["tool_choice"] = choice

    def named_tool_choice(self, name: str) -> dict[str, Any]:
        return {"type": "function", "function": {"name": name}}

    def apply_chat_format(self, body: dict[str, Any], fmt: ResponseFormat) -> None:
        if isinstance(fmt, JsonSchema):
            js: dict[str, Any] = {"name": fmt.name, "schema": fmt.schema}
            if fmt.strict is not None:
                js["strict"] = fmt.strict
            body["response_format"] = {"type": "json_schema", "json_schema": js}
        elif isinstance(fmt, JsonObject):
            body["response_format"] = {"type": "json_object"}
        else:
            raise self.unsupported(f"{type(fmt).__name__} output constraints on chat")

    def apply_sampling(
        self, body: dict[str, Any], sampling: Mapping[str, Any], table: Mapping[str, str], route: str
    ) -> None:
        for name, value in sampling.items():
            if value is None:
                continue
            wire = table.get(name)
            if wire is None:
                raise self.unsupported(
                    f"the sampling parameter {name!r} on its {route} route"
                    f" (supported: {', '.join(sorted(table))}; pass extra_body for anything else)"
                )
            if name == "stop" and isinstance(value, str):
                value = [value]
            body[wire] = value

    def parse_chat(self, body: Any, request: HttpRequest | None = None) -> Completion:
        """The answer to ``request`` (needed to recover tool calls its tools' markup left in the content)."""
        choice = body["choices"][0]
        msg = choice["message"]
        raw_calls = msg.get("tool_calls") or []
        calls = [self.parse_tool_call(i, tc) for i, tc in enumerate(raw_calls)]
        raw_finish = choice.get("finish_reason")
        logprobs = parse_openai_logprobs(choice.get("logprobs")) if choice.get("logprobs") else None
        content = text_of(msg.get("content"))
        thought: str | None = text_of(msg.get("reasoning") or msg.get("reasoning_content")) or None
        if thought is not None:  # parsed by the engine: the answer starts without vLLM's leading newline
            content = lstrip_newlines(content)
        elif self.think_tags is not None:  # no server-side parser: split <think> here
            thought, content = split_reasoning(content, self.think_tags)
        recovered: tuple[RecoveredCall, ...] = ()
        if request is not None and request.recover_tools:
            content, more, recovered = recover_tool_calls(content, request.recover_tools, len(calls))
            calls += more
        fmt = request.json_format if request is not None else None
        found = json_answer(
            content,
            thought,
            fmt,
            has_tool_calls=bool(calls),
            finish=normalize_finish(raw_finish, False),
            engine=self.engine,
        )
        return Completion(
            content=content if found is None else found,
            content_from_reasoning=found is not None,
            reasoning=thought,
            finish_reason=normalize_finish(raw_finish, bool(calls)),
            raw_finish_reason=raw_finish,
            tool_calls=calls,
            usage=parse_usage(body.get("usage")),
            model=body.get("model") or self.model,
            id=body.get("id") or None,
            logprobs=logprobs,
            engine=self.engine,
            recovered=recovered,
        )

    def parse_tool_call(self, index: int, tc: Mapping[str, Any]) -> Any:
        fn = tc.get("function") or {}
        return build_tool_call(index, _id(tc.get("id")), fn.get("name"), fn.get("arguments"))

    def chat_stream_decoder(self, request: HttpRequest | None = None) -> StreamDecoder:
        """A decoder for the stream answering ``request`` (needed to recover tool calls from content)."""
        return ChatStreamDecoder(self, self.model, request)

    # -- completions (the native text route of engines that have no other) -------------------------
    def media_probe(self, images: tuple[str, ...]) -> HttpRequest | None:
        """The discovery request ``generate`` needs answered before it can send ``images`` (None: none
        needed); refuses images the native text route cannot take."""
        return None

    def parse_media_probe(self, body: Any) -> str:
        """The media marker from the answer to :meth:`media_probe`."""
        raise self.unsupported("images on the native text route")

    def build_generate(self, req: GenerateRequest, stream: bool) -> HttpRequest:
        if req.images:
            raise InvalidRequestError(
                f"images need the chat route on {self.engine} (its completions route takes text only)",
                engine=self.engine,
            )
        body: dict[str, Any] = {"prompt": req.prompt}
        model = req.model or self.model
        if model and self.send_model:
            body["model"] = model
        self.apply_sampling(body, req.sampling, self.generate_params, "completions")
        if req.response_format is not None:
            self.apply_generate_format(body, req.response_format)
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        self.apply_adapter(body, req.adapter)
        body.update(req.extra_body)
        return HttpRequest("POST", self.completions_path, body, stream)

    def apply_generate_format(self, body: dict[str, Any], fmt: ResponseFormat) -> None:
        raise self.unsupported(f"{type(fmt).__name__} output constraints on completions")

    def parse_generate(self, body: Any) -> Completion:
        choice = body["choices"][0]
        raw_finish = choice.get("finish_reason")
        return Completion(
            content=text_of(choice.get("text")),
            finish_reason=normalize_finish(raw_finish, False),
            raw_finish_reason=raw_finish,
            usage=parse_usage(body.get("usage")),
            model=body.get("model") or self.model,
            id=body.get("id") or None,
            logprobs=parse_completion_logprobs(choice.get("logprobs")),
            engine=self.engine,
        )

    def generate_stream_decoder(self) -> StreamDecoder:
        return CompletionsStreamDecoder(self, self.model)

    # -- discovery ----------------------------------------------------------------------------------
    def info_requests(self) -> list[HttpRequest]:
        return [HttpRequest("GET", "/v1/models")]

    def parse_info(self, bodies: list[Any]) -> EngineInfo:
        models = bodies[0]
        data = models.get("data") if isinstance(models, Mapping) else None
        first = data[0] if isinstance(data, list) and data and isinstance(data[0], Mapping) else {}
        return EngineInfo(
            engine=self.engine,
            model=first.get("id"),
            version=None,
            raw={"models": models},
            constrained_tool_arguments=self.constrains_named_tools,
        )

    def build_tokenize(self, text: str, add_special_tokens: bool) -> HttpRequest:
        raise self.unsupported("tokenize")

    def parse_tokenize(self, body: Any) -> list[TokenInfo]:
        raise NotImplementedError


_MISSING = object()


def _controls(ctl: ReasoningControls) -> dict[str, Any]:
    given = {"thinking": ctl.thinking, "reasoning_effort": ctl.effort, "thinking_budget": ctl.budget}
    return {name: value for name, value in given.items() if value is not None}


def _id(v: Any) -> str | None:
    if isinstance(v, bool) or v is None:
        return None
    return str(v) if isinstance(v, str | int) else None
