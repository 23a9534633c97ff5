"""The checks of ``engine-clients doctor`` on the chat route: server info, API key, context size, chat,
prompt cache hits, server timings, streaming and usage in streams, tools under each ``tool_choice``.

Each check sends at most a few small requests through the package's own client and appends its rows to the
report. Engine knowledge stays out: what an engine cannot do shows up as its client's typed error, and the
fix comes from ``dialects/fixes.py``."""

from __future__ import annotations

from typing import Any

from ..dialects.fixes import Fix
from ..dialects.fixes import fix_for
from ..errors import AuthenticationError
from ..errors import EngineError
from ..errors import InvalidRequestError
from ..errors import UnsupportedInputError
from ..types import Completion
from ..types import End
from ..types import Token
from ..types import ToolCall
from .core import Check
from .core import Session
from .core import Status
from .core import _short

__all__ = ["MESSAGES", "WEATHER_TOOL", "check_chat", "check_info", "check_stream", "check_tools"]

# The system prompt is long enough for a prefix cache to hold whole blocks of it (vLLM: 16 tokens a block).
SYSTEM = (
    "You are a helpful assistant for a weather service. Answer in one short sentence, in plain words, without"
    " lists, tables or code. When a question names a city, answer for that city; when it names none, say"
    " hello. Never ask a follow-up question and never explain how you found the answer."
)
MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Say hello."}]
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
TIME_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current time in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
SHORT: dict[str, Any] = {"max_tokens": 16, "temperature": 0}


def _add(s: Session, capability: str, label: str, status: Any, seen: str, fix: Any = None) -> None:
    s.report.checks.append(Check(capability, label, status, seen, fix))


def _failed(s: Session, capability: str, label: str, exc: BaseException) -> None:
    """A capability's request failed: the row, with the fix its error points to. A refused key stops all."""
    if isinstance(exc, AuthenticationError):
        _add(s, "auth", "API key", "fail", _short(exc), s.fix("auth"))
    elif isinstance(exc, InvalidRequestError) and not isinstance(exc, UnsupportedInputError):
        fix = s.fix(capability, exc)
        _add(s, capability, label, "fail" if fix else "skip", _short(exc), fix)
    else:
        _add(s, capability, label, "fail", _short(exc), s.fix(capability, exc))


def _quote(text: str, limit: int = 40) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def check_info(s: Session, need: int | None) -> None:
    with s.client() as client:
        try:
            s.info = info = client.info()
        except EngineError as exc:
            _failed(s, "info", "server info", exc)
            return
    version = info.version
    if version and version.startswith("b0-"):  # llama.cpp built from a source tree without git metadata
        version = f"{version} (built without its build number)"
    s.report.version, s.report.model = info.version, info.model
    _add(
        s,
        "info",
        "server info",
        "ok",
        f"{s.engine} {version or '(version not reported)'}, model {info.model}",
    )
    check_auth(s)
    check_context(s, need)


def check_auth(s: Session) -> None:
    """Whether the server wants a key (a client without one is refused) and whether ours was accepted."""
    try:
        with s.client(api_key="") as bare:
            bare.info()
    except AuthenticationError:
        _add(s, "auth", "API key", "ok", "required by the server; the key given was accepted")
        return
    except EngineError:
        pass
    _add(s, "auth", "API key", "ok", "not required: the server answers without a key")


def check_context(s: Session, need: int | None) -> None:
    limit = s.info.max_total_tokens if s.info else None
    if limit is None:
        _add(s, "context", "context size", "skip", "the server does not say its context size")
    elif need is not None and limit < need:
        seen = f"{limit:,} tokens per request, fewer than the {need:,} needed"
        _add(s, "context", "context size", "fail", seen, fix_for(s.engine, "context"))
    else:
        _add(s, "context", "context size", "ok", f"{limit:,} tokens per request")


def check_chat(s: Session, need: int | None) -> None:
    with s.client() as client:
        try:
            first = client.chat(MESSAGES, **SHORT)
        except EngineError as exc:
            s.chat_failed = True
            _failed(s, "chat", "chat", exc)
            return
        s.first = first
        usage = first.usage
        seen = f"answered {_quote(first.content)} (finish {first.finish_reason}"
        seen += f", {usage.prompt_tokens}+{usage.completion_tokens} tokens)" if usage else ")"
        _add(s, "chat", "chat", "ok", seen)
        timings(s, first)
        try:
            again = client.chat(MESSAGES, **SHORT)
        except EngineError as exc:
            _failed(s, "cache", "prompt cache hits", exc)
            return
    cached = again.usage.cached_prompt_tokens if again.usage else None
    if cached is None:
        cached = again.timings.server_cached_tokens if again.timings else None
    if cached:
        _add(
            s,
            "cache",
            "prompt cache hits",
            "ok",
            f"{cached} of {again.usage.prompt_tokens if again.usage else '?'} prompt tokens reused",
        )
    elif cached == 0:
        _add(
            s,
            "cache",
            "prompt cache hits",
            "warn",
            "reported, but the same prompt twice reused no tokens (prefix caching off?)",
        )
    else:
        fix = fix_for(s.engine, "cache")
        _add(s, "cache", "prompt cache hits", "fail" if fix else "skip", "not reported", fix)


def timings(s: Session, c: Completion) -> None:
    t = c.timings
    server = [
        (name, value)
        for name, value in (
            ("prefill", t.server_prompt_time if t else None),
            ("decode", t.server_generation_time if t else None),
            ("total", t.server_total_time if t else None),
        )
        if value is not None
    ]
    if server:
        seen = ", ".join(f"{name} {value * 1000:.0f} ms" for name, value in server)
        _add(s, "timings", "server timings", "ok", seen)
        return
    fix = fix_for(s.engine, "timings")
    _add(
        s,
        "timings",
        "server timings",
        "fail" if fix else "skip",
        "the server reports none (client-side timings only)",
        fix,
    )


def _needs_chat(s: Session, capability: str, label: str) -> bool:
    if s.chat_failed:
        _add(s, capability, label, "skip", "chat does not work here")
        return False
    return True


def check_stream(s: Session, need: int | None) -> None:
    if not _needs_chat(s, "streaming", "streaming"):
        return
    tokens, end = 0, None
    with s.client() as client:
        try:
            for event in client.chat_stream(MESSAGES, **SHORT):
                if isinstance(event, Token):
                    tokens += 1
                elif isinstance(event, End):
                    end = event.completion
        except EngineError as exc:
            _failed(s, "streaming", "streaming", exc)
            return
    assert end is not None
    _add(s, "streaming", "streaming", "ok", f"{tokens} token events, then {_quote(end.content)}")
    if end.usage is not None:
        _add(s, "stream_usage", "usage in streams", "ok", f"{end.usage.completion_tokens} completion tokens")
    else:
        _add(
            s,
            "stream_usage",
            "usage in streams",
            "fail",
            "the stream's last chunk carried no usage",
            fix_for(s.engine, "stream_usage"),
        )


TOOL_ASK = [{"role": "user", "content": "What's the weather in Paris?"}]
TOOL_ARGS: dict[str, Any] = {"max_tokens": 128, "temperature": 0}


def check_tools(s: Session, need: int | None) -> None:
    if not _needs_chat(s, "tools", "tools"):
        return
    with s.client() as client:
        for choice in ("auto", "required", "get_weather", "none"):
            label = f"tools: tool_choice={choice!r}"
            cap = "tools_auto" if choice == "auto" else "tools"
            try:
                # "required" is asked with tools marked non-strict: the client would otherwise send a forced
                # call's tools strict itself, and this row is where loose arguments show (what "auto" gets)
                tools = (
                    [_loose(WEATHER_TOOL), _loose(TIME_TOOL)]
                    if choice == "required"
                    else [WEATHER_TOOL, TIME_TOOL]
                )
                r = client.chat(TOOL_ASK, tools=tools, tool_choice=choice, **TOOL_ARGS)
            except EngineError as exc:
                _failed(s, cap, label, exc)
                if isinstance(exc, AuthenticationError):
                    return
                continue
            if (
                choice != "auto"
                and choice != "none"
                and r.tool_calls
                and not all(_fits(c) for c in r.tool_calls)
            ):
                _strict_retry(s, client, choice, label, _calls(r))
            else:
                status, seen, fix = _tool_verdict(s, choice, r)
                _add(s, cap, label, status, seen, fix)


def _calls(r: Completion) -> str:
    return ", ".join(f"{c.name}({c.raw_arguments})" for c in r.tool_calls)


def _tool_verdict(s: Session, choice: str, r: Completion) -> tuple[Status, str, Fix | None]:
    if choice == "none":
        if r.tool_calls:
            return "fail", f"called {_calls(r)} although tool_choice='none'", None
        return "ok", "no call, as asked", None
    if r.recovered:
        seen = f"the call came back as text; the client recovered {_calls(r)}"
        return "warn", seen, fix_for(s.engine, "tools_auto") or fix_for(s.engine, "tools")
    if r.tool_calls:
        return "ok", f"called {_calls(r)}", None
    if r.finish_reason == "length":
        return "warn", f"cut at max_tokens={TOOL_ARGS['max_tokens']} before a call: {_quote(r.content)}", None
    if choice == "auto":
        return "ok", f"answered in text (the model chose not to call): {_quote(r.content)}", None
    return "fail", f"answered in text although a call was required: {_quote(r.content)}", s.fix("tools")


def _fits(call: ToolCall) -> bool:
    """The arguments fit the offered schemas: one string ``city``."""
    args = call.arguments
    return isinstance(args, dict) and set(args) == {"city"} and isinstance(args.get("city"), str)


def _loose(tool: dict[str, Any]) -> dict[str, Any]:
    return {**tool, "function": {**tool["function"], "strict": False}}


def _strict_retry(s: Session, client: Any, choice: str, label: str, calls: str) -> None:
    """Arguments that do not fit the schema: ask again with a strict tool, to tell the user what helps."""
    strict = {**WEATHER_TOOL, "function": {**WEATHER_TOOL["function"], "strict": True}}
    seen = f"arguments do not fit the schema: {calls}"
    try:
        again = client.chat(TOOL_ASK, tools=[strict], tool_choice=choice, **TOOL_ARGS)
        if again.tool_calls and all(_fits(c) for c in again.tool_calls):
            seen += f"; with strict=True they do: {_calls(again)}"
        else:
            seen += f"; with strict=True still not: {_calls(again) or _quote(again.content)}"
    except EngineError as exc:
        seen += f"; strict=True failed too ({_short(exc, 80)})"
    _add(s, "tool_arguments", label, "warn", seen, fix_for(s.engine, "tool_arguments"))
