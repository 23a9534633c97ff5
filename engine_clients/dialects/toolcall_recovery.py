"""Tool calls recovered from markup a server's tool parser missed: a pure, incremental codec (no I/O).

With tools offered but no (or the wrong) tool parser on the server, a call's markup leaks into the content:
Hermes/Qwen ``<tool_call>{"name", "arguments"}</tool_call>`` blocks; Mistral ``[TOOL_CALLS]`` with a JSON list
of those, or ``[TOOL_CALLS]name[ARGS]{...}`` (``[CALL_ID]id`` optional); Llama 3 ``<|python_tag|>{"name",
"parameters"}`` (``;`` between calls); a bare JSON object, the whole content (```` ```json ```` fence
optional), of ``name``, ``arguments``/``parameters`` and at most ``"type": "function"``.

A call is recovered only when it names an offered tool, and a block only when all its calls do (else it
stays in the content untouched). JSON arguments are parsed; almost-JSON is repaired with ``json-repair``
when that gives an object (reported in :class:`RecoveredCall`); anything else is an invalid call (arguments
None, raw text kept). No arguments: ``{}``. A call cut off (markup never closed, JSON unfinished at the end)
is never runnable: an invalid call with its raw text. Recovered markup leaves the content with the blanks
next to it; text on both sides of a block is joined by a newline.

:class:`ToolCallRecovery` streams: content passes until an opener could be starting and is held from there
(a bare JSON candidate: the whole content, released once it cannot be a call); at the end the held markup
becomes calls. :func:`recover_tool_calls` runs the same filter over a whole text, so both agree exactly.
"""

from __future__ import annotations

import json
import re
from typing import Any
from typing import Literal

from ..types import RecoveredCall
from ..types import ToolCall

__all__ = ["ToolCallRecovery", "recover_tool_calls"]

Markup = Literal["hermes", "mistral", "llama3", "json"]
_OPENERS: tuple[tuple[str, Markup], ...] = (
    ("<tool_call>", "hermes"),
    ("[TOOL_CALLS]", "mistral"),
    ("<|python_tag|>", "llama3"),
)
_HERMES_CLOSE = "</tool_call>"
_BARE_KEYS = frozenset({"name", "arguments", "parameters", "type"})
_NAME = re.compile(r'"name"\s*:\s*"((?:[^"\\]|\\.)*)"')
_FIRST_KEY = re.compile(r'\{\s*"((?:[^"\\]|\\.)*)"\s*:\s*')
_FENCE = re.compile(r"```[A-Za-z]*[ \t]*\n")
_MISTRAL_NAME = re.compile(r"([A-Za-z_][\w.\-]*)(?:\[CALL_ID\]([^\[]*))?\[ARGS\]\s*")
# brackets and strings (an unfinished one runs to the end)
_JSON_TOKENS = re.compile(r'[{}\[\]]|"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)')
_SLOW = re.compile(r"[<\[]|\s\Z")  # a piece that may hold or end in an opener's start or blanks
_CUT = "the tool call was cut off before its markup closed"

_START, _TEXT, _BARE, _HOLD = range(4)  # ToolCallRecovery states (from _BARE on: held to the end)
# (name, arguments or None, raw arguments, error, repaired, markup, source)
_Call = tuple[str, "dict[str, Any] | None", str, "str | None", bool, Markup, str]


def _decode(text: str) -> tuple[Any, bool]:
    """(value, repaired): JSON, else what json-repair makes of it (None when it makes nothing)."""
    try:
        return json.loads(text), False
    except ValueError:
        import json_repair  # on first use: most answers never need it

    try:
        value = json_repair.repair_json(text, return_objects=True)
    except Exception:  # a repair library failing is no reason to fail the answer
        value = None
    return (value, True) if isinstance(value, dict | list) and value else (None, False)


def _balanced_end(text: str, start: int) -> int | None:
    """The end of the JSON object or list opening at ``start`` (None: it never closes)."""
    depth = 0
    for m in _JSON_TOKENS.finditer(text, start):
        c = m.group()
        if c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
            if depth == 0:
                return m.end()
    return None


def _skip(text: str, p: int, seps: str = "") -> int:
    while p < len(text) and (text[p].isspace() or text[p] in seps):
        p += 1
    return p


def _arguments(value: Any) -> tuple[dict[str, Any] | None, str, str | None, bool]:
    """(arguments or None, raw string, error, repaired) from an ``arguments``/``parameters`` value."""
    if value is None or value == "":
        return {}, "{}", None, False
    if isinstance(value, dict):
        return value, json.dumps(value, ensure_ascii=False), None, False
    if isinstance(value, str):
        parsed, repaired = _decode(value)
        if isinstance(parsed, dict):
            return parsed, json.dumps(parsed, ensure_ascii=False) if repaired else value, None, repaired
        return None, value, "arguments are not a JSON object", False
    return None, json.dumps(value), f"arguments are a JSON {type(value).__name__}, not an object", False


def _call(obj: Any, tools: frozenset[str], repaired: bool, markup: Markup, source: str) -> _Call | None:
    """A call from one decoded object naming an offered tool (None: not such an object)."""
    if isinstance(obj, dict) and "name" not in obj and isinstance(obj.get("function"), dict):
        obj = obj["function"]  # the OpenAI shape
    if not isinstance(obj, dict) or obj.get("name") not in tools:
        return None
    value = obj.get("arguments", obj.get("parameters"))
    args, raw, error, fixed = _arguments(value)
    return (obj["name"], args, raw, error, repaired or fixed, markup, source)


def _unquote(s: str) -> str | None:
    try:
        value = json.loads(f'"{s}"')
    except ValueError:
        return None
    return value if isinstance(value, str) else None


def _invalid(
    text: str, tools: frozenset[str], markup: Markup, error: str, source: str, name: Any = None
) -> _Call | None:
    """An invalid call keeping ``text`` when it names an offered tool (None otherwise); without ``name``,
    the first ``"name": "..."`` in the text."""
    if name is None:
        m = _NAME.search(text)
        name = _unquote(m.group(1)) if m else None
    return (name, None, text, error, False, markup, source) if name in tools else None


def _json_calls(text: str, tools: frozenset[str], markup: Markup, source: str) -> list[_Call] | None:
    """The calls in a closed block of JSON (an object, a list, or objects in a row); None: not all offered."""
    try:
        value, repaired = json.loads(text), False
    except ValueError:
        items, end, cut = _objects(text, 0, ",;")
        if len(items) > 1 and cut is None and _skip(text, end) == len(text):  # objects in a row
            value, repaired = [], False
            for item in items:
                v, r = _decode(item)
                value.append(v)
                repaired = repaired or r
        else:
            value, repaired = _decode(text)
    if value is None:
        bad = _invalid(text, tools, markup, "the tool call is not valid JSON", source)
        return [bad] if bad is not None else None
    calls = [
        _call(v, tools, repaired, markup, source) for v in (value if isinstance(value, list) else [value])
    ]
    return None if not calls or None in calls else [c for c in calls if c is not None]


def _objects(text: str, p: int, seps: str) -> tuple[list[str], int, str | None]:
    """Balanced ``{...}`` objects in a row from ``p``, separated by whitespace or ``seps``: (objects, where
    they end, the unfinished object at the end of the text or None)."""
    items: list[str] = []
    while True:
        q = _skip(text, p, seps)
        if q >= len(text) or text[q] != "{":
            return items, p, None
        end = _balanced_end(text, q)
        if end is None:
            return items, len(text), text[q:]
        items.append(text[q:end])
        p = end


def _hermes(text: str, i: int, tools: frozenset[str]) -> tuple[int, list[_Call]] | None:
    start = i + len("<tool_call>")
    j = text.find(_HERMES_CLOSE, start)
    if j < 0:  # never closed: cut off
        bad = _invalid(text[start:].strip(), tools, "hermes", _CUT, text[i:])
        return (len(text), [bad]) if bad is not None else None
    end = j + len(_HERMES_CLOSE)
    calls = _json_calls(text[start:j].strip(), tools, "hermes", text[i:end])
    return (end, calls) if calls else None


def _mistral(text: str, i: int, tools: frozenset[str]) -> tuple[int, list[_Call]] | None:
    p = _skip(text, i + len("[TOOL_CALLS]"))
    if p < len(text) and text[p] in "[{":
        end = _balanced_end(text, p)
        if end is not None:
            calls = _json_calls(text[p:end], tools, "mistral", text[i:end])
            return (end, calls) if calls else None
        bad = _invalid(text[p:], tools, "mistral", _CUT, text[i:])  # never closed: cut off
        return (len(text), [bad]) if bad is not None else None
    m = _MISTRAL_NAME.match(text, p)
    if m is None:  # perhaps a name cut before its [ARGS]
        head = re.match(r"[A-Za-z_][\w.\-]*", text[p:])
        rest = text[p + head.end() :] if head else ""
        if head and any(tag.startswith(rest) or rest.startswith(tag) for tag in ("[ARGS]", "[CALL_ID]")):
            bad = _invalid("", tools, "mistral", _CUT, text[i:], head.group())
            return (len(text), [bad]) if bad is not None else None
        return None
    name, q = m.group(1), m.end()
    if name not in tools:
        return None
    if q < len(text) and text[q] != "{":
        return None
    end = _balanced_end(text, q) if q < len(text) else None
    if end is None:  # cut off (text[q:] may be empty)
        return len(text), [(name, None, text[q:], _CUT, False, "mistral", text[i:])]
    args, raw, error, repaired = _arguments(text[q:end])
    return end, [(name, args, raw, error, repaired, "mistral", text[i:end])]


def _llama3(text: str, i: int, tools: frozenset[str]) -> tuple[int, list[_Call]] | None:
    items, end, cut = _objects(text, i + len("<|python_tag|>"), ";")
    calls: list[_Call] = []
    for item in items:  # complete objects are calls, an unfinished one at the end an invalid call
        found = _json_calls(item, tools, "llama3", text[i:end])
        if found is None:
            return None
        calls += found
    if cut is not None:
        bad = _invalid(cut, tools, "llama3", _CUT, text[i:end])
        if bad is None:
            return None
        calls.append(bad)
    return (end, calls) if calls else None


_PARSERS = {"hermes": _hermes, "mistral": _mistral, "llama3": _llama3}


def _bare_excluded(text: str, tools: frozenset[str]) -> bool | None:
    """Whether the content (from its first non-blank character) cannot be a bare JSON call: True, False,
    or None while undecided; once decided, the same for any longer text."""
    p = _skip(text, 0)
    if p == len(text):
        return None
    if text.startswith("`", p):
        fence = _FENCE.match(text, p)
        if fence is None:
            return None if "```".startswith(text[p : p + 3]) and "\n" not in text[p:] else True
        p = _skip(text, fence.end())
        if p == len(text):
            return None
    if text[p] != "{":
        return True
    m = _FIRST_KEY.match(text, p)
    if m is None:
        return None if _skip(text, p + 1) == len(text) or text[_skip(text, p + 1)] == '"' else False
    if m.group(1) != "name":
        return m.group(1) not in _BARE_KEYS
    value = _NAME.match(text, _skip(text, p + 1))
    return None if value is None else _unquote(value.group(1)) not in tools


def _bare(text: str, tools: frozenset[str]) -> _Call | None:
    """The whole content as one bare JSON call (None: it is not one)."""
    if _bare_excluded(text, tools) is not False:
        return None
    body = text.strip()
    fence = _FENCE.match(body)
    if fence is not None:
        closed = body.endswith("```") and len(body) >= fence.end() + 3
        body = body[fence.end() : -3].strip() if closed else body[fence.end() :].strip()
    end = _balanced_end(body, 0)
    if end is None or (fence is not None and not closed):
        return _invalid(body, tools, "json", _CUT, text.strip())
    if end != len(body):
        return None
    value, repaired = _decode(body)
    ok = (
        isinstance(value, dict)
        and set(value) <= _BARE_KEYS
        and value.get("type", "function") == "function"
        and ("arguments" in value or "parameters" in value)
    )
    return _call(value, tools, repaired, "json", text.strip()) if ok else None


def _opener(text: str, start: int) -> tuple[int, Markup] | None:
    found = [(i, kind) for tag, kind in _OPENERS if (i := text.find(tag, start)) >= 0]
    return min(found) if found else None


def _hold_from(buf: str) -> int:
    """Where a suffix of ``buf`` that could begin an opener starts (``len(buf)``: none)."""
    for j in range(max(0, len(buf) - 13), len(buf)):
        if buf[j] in "<[" and any(tag.startswith(buf[j:]) for tag, _ in _OPENERS):
            return j
    return len(buf)


class ToolCallRecovery:
    """Streaming recovery for one answer's content: :meth:`feed` each piece (what may be shown comes back),
    :meth:`flush` at the end (the rest of the content, and the recovered calls). See the module rules."""

    __slots__ = ("held", "more", "shown", "state", "tools")

    def __init__(self, tools: tuple[str, ...] | list[str] | frozenset[str]) -> None:
        self.tools = frozenset(tools)
        self.state = _START
        self.held = ""  # not yet shown: blanks, a possible opener, markup, or a bare JSON candidate
        self.more: list[str] = []  # what came after, once held to the end (markup or a bare candidate)
        self.shown = False  # some content has been passed through

    def pending(self) -> str:  # what is held back now, as it came
        return self.held + "".join(self.more)

    def feed(self, text: str) -> str:
        """The next content piece in; the part that can be shown now out (possibly empty)."""
        state = self.state
        if state == _TEXT and not self.held and _SLOW.search(text) is None:
            self.shown = self.shown or bool(text)
            return text
        if state >= _BARE:
            self.more.append(text)
            return ""
        buf, self.held = self.held + text, ""
        if state == _START:
            excluded = _bare_excluded(buf, self.tools)
            if not excluded:
                self.state = _BARE if excluded is False else _START
                self.held = buf
                return ""
            self.state = _TEXT
        return self._text(buf)

    def _text(self, buf: str) -> str:
        found = _opener(buf, 0)
        cut = found[0] if found is not None else _hold_from(buf)
        out = buf[:cut].rstrip()
        self.held = buf[len(out) :]
        if found is not None:
            self.state = _HOLD
        self.shown = self.shown or bool(out)
        return out

    def reset(self) -> str:
        """Start over (the content so far turned out to be reasoning); returns what was held back."""
        held = self.pending()
        self.held, self.more, self.state, self.shown = "", [], _START, False
        return held

    def flush(self, first_index: int = 0) -> tuple[str, list[ToolCall], tuple[RecoveredCall, ...]]:
        """The content ended: (the rest of it, the calls indexed from ``first_index``, the report)."""
        held, state = self.pending(), self.state
        self.held, self.more = "", []
        found: list[_Call] = []
        if state == _START and held.strip():  # an undecided start: judged whole
            state = _BARE
        if state == _BARE:
            call = _bare(held, self.tools)
            if call is not None:
                found, held = [call], ""
            else:
                self.state = _TEXT
                shown = self._text(held)
                tail, more, notes = self.flush(first_index)
                return shown + tail, more, notes
        elif state == _HOLD:
            held, found = self._blocks(held)
        self.state = _TEXT
        calls: list[ToolCall] = []
        recovered: list[RecoveredCall] = []
        for index, (name, args, raw, error, repaired, markup, source) in enumerate(found, first_index):
            calls.append(ToolCall(f"recovered_{index}", name, args, raw, index, error))
            recovered.append(RecoveredCall(index, markup, source, repaired))
        return held, calls, tuple(recovered)

    def _blocks(self, text: str) -> tuple[str, list[_Call]]:
        """The held text from the first opener on: the content left and the calls of its markup blocks."""
        segments, calls, pos, search = [], [], 0, 0
        while (found := _opener(text, search)) is not None:
            i, kind = found
            parsed = _PARSERS[kind](text, i, self.tools)
            if parsed is None:
                search = i + 1
                continue
            segments.append(text[pos:i])
            calls += parsed[1]
            pos = search = parsed[0]
        if not calls:
            return text, []
        segments.append(text[pos:])
        out = segments[0].rstrip()
        joined = self.shown or bool(out)
        for n, seg in enumerate(segments[1:], 2):
            seg = seg.strip() if n < len(segments) else seg.lstrip()
            if seg:
                out += ("\n" if joined else "") + seg
                joined = True
        return out, calls


def recover_tool_calls(
    text: str, tools: tuple[str, ...] | list[str] | frozenset[str], first_index: int = 0
) -> tuple[str, list[ToolCall], tuple[RecoveredCall, ...]]:
    """(content without the recovered markup, the recovered calls, what was recovered) for a whole answer."""
    recovery = ToolCallRecovery(tools)
    shown = recovery.feed(text) if text else ""
    rest, calls, notes = recovery.flush(first_index)
    return shown + rest, calls, notes
