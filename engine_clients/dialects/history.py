"""History fitting: a pure, I/O-free step that reshapes a chat history to what a strict chat template
accepts, and reports every change it made.

Agent frameworks build histories that strict Jinja chat templates (Gemma, Mistral, Qwen3.5, ...) refuse
with ``raise_exception``: "Conversation roles must alternate user/assistant/user/assistant/...", "System
message must be at the beginning.", "Tool call IDs should be alphanumeric strings with length 9!". The
engines answer those with a 400/422 (see :func:`template_rule_of`). :func:`fit_history` fixes the history
before it is sent, under a set of :class:`TemplateRules` (presets, or :func:`rules_from_template` from the
template's own source, e.g. llama.cpp's ``GET /props`` ``chat_template``).

Messages are the package's normalized OpenAI-shaped dicts (``_requests.normalize_messages``): ``role``,
``content`` (a string, a list of content parts, or None), ``tool_calls``, ``tool_call_id``, ``name``,
``reasoning`` (or a raw ``reasoning_content``). Only the roles ``system``, ``user``, ``assistant`` and
``tool`` are reshaped; any other role (``developer``, ...) is passed through where it stands.

What fitting does (nothing is ever dropped: every text of the input is in the output; merges join texts
with a blank line, ``"\\n\\n"``). In this order:

1. ``text_content``: a content that is a list of text-like parts only (``text``, ``input_text``,
   ``output_text``, each with a string ``text``) becomes one string, the parts joined with ``"\\n"`` (as
   vLLM joins them). A list that also holds an image, audio or unknown part is kept as a list.
2. ``system_first`` (and ``alternate``, whose alternation starts after the one optional system message):
   several system messages at the start are merged into one (``merged_system``); a system message later
   in the history has its text moved into that leading system message, which is created when the history
   has none (``moved_system``). Moving, rather than turning it into a user message, is deliberate: late
   system messages come from agent frameworks (LangGraph's summarization and prompt middleware insert a
   system message after earlier turns) and carry instructions for the whole conversation, so the top is
   where they belong, and a user turn would both misattribute them and break alternation.
3. ``alternate``: consecutive user messages are merged, and consecutive assistant messages (no tool
   result between them) are merged, their ``tool_calls`` and reasoning concatenated
   (``merged_consecutive``). A history whose first message after the system message is an assistant
   message gets an empty user message, ``{"role": "user", "content": ""}``, inserted before it
   (``inserted_user``). The empty text is the least invasive choice: it adds no words the model could
   take as the user's, and the model never answers it directly, since the original assistant message
   follows it.
4. ``nonempty_assistant``: an assistant message whose content is None or absent (usually one that only
   calls tools) gets ``""`` (``filled_empty_content``); templates that concatenate the content raise on
   None.
5. ``tool_call_id_format="mistral9"``: every tool-call id that is not exactly 9 ASCII letters or digits
   is replaced, in the assistant's ``tool_calls[].id`` and in the tool result's ``tool_call_id`` alike,
   by 9 characters derived from a SHA-256 of the original id (deterministic, collision-free within the
   history) (``renamed_tool_call_id``). :attr:`FittedHistory.id_map` maps each new id to its original.

Alternation, precisely: after the optional leading system message, the history is a sequence of turns.
A user turn is one user message. An assistant turn is an assistant message, then any number of groups
"tool results, then another assistant message", and may end with tool results; that is, an assistant
message with ``tool_calls``, its tool results and the assistant's following reply are one turn. Turns
must alternate user, assistant, user, ... starting with a user turn, so two user messages, or two
assistant messages, are never adjacent. A user message right after tool results is therefore fine (the
results close the assistant turn); templates that also require an assistant reply between tool results
and the next user message (Mistral's alternation check skips tool calls and results) are not covered by
these rules. Tool messages that follow no assistant message are left where they are.

Fitting with :meth:`TemplateRules.lenient` returns the messages unchanged, and fitting an already fitted
history changes nothing (the step is idempotent).
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from ..types import HistoryChange
from .tool_call_ids import rename_tool_call_ids

__all__ = ["FittedHistory", "HistoryChange", "TemplateRules", "fit_history"]

# The text-like content part types flattened under ``text_content`` (OpenAI chat, and the Responses
# API's ``input_text``/``output_text`` that LangChain's and LlamaIndex's OpenAI-style blocks carry).
_TEXT_PARTS = frozenset({"text", "input_text", "output_text"})
_REASONING_KEYS = ("reasoning", "reasoning_content")


@dataclass(frozen=True)
class TemplateRules:
    """What a chat template insists on (see the module's documentation for each rule's exact meaning).

    ``system_first``: one system message, only at index 0. ``alternate``: after it, user and assistant
    turns alternate starting with a user turn (implies the system rule: the alternation is defined after
    the one optional system message). ``text_content``: content is a plain string where it is only text.
    ``nonempty_assistant``: an assistant's content is never None. ``tool_call_id_format``: None, or
    ``"mistral9"`` (exactly 9 ASCII letters or digits)."""

    system_first: bool = False
    alternate: bool = False
    text_content: bool = False
    nonempty_assistant: bool = False
    tool_call_id_format: str | None = None

    def __post_init__(self) -> None:
        if self.tool_call_id_format not in (None, "mistral9"):
            raise ValueError(f"unknown tool_call_id_format {self.tool_call_id_format!r}: None or 'mistral9'")

    @classmethod
    def strict(cls) -> TemplateRules:
        """Every rule on, tool-call ids left as they are."""
        return cls(system_first=True, alternate=True, text_content=True, nonempty_assistant=True)

    @classmethod
    def mistral(cls) -> TemplateRules:
        """:meth:`strict` plus Mistral's 9-character alphanumeric tool-call ids."""
        return cls(
            system_first=True,
            alternate=True,
            text_content=True,
            nonempty_assistant=True,
            tool_call_id_format="mistral9",
        )

    @classmethod
    def lenient(cls) -> TemplateRules:
        """No rule: fitting returns the history unchanged."""
        return cls()

    @property
    def any(self) -> bool:
        """Whether any rule is on."""
        return bool(
            self.system_first
            or self.alternate
            or self.text_content
            or self.nonempty_assistant
            or self.tool_call_id_format
        )


@dataclass(frozen=True)
class FittedHistory:
    """What :func:`fit_history` returns: the fitted ``messages`` (new dicts; the input is never mutated),
    the ``changes`` made, in order, and ``id_map``: each rewritten tool-call id -> the original id, so the
    ids in an answer can be mapped back."""

    messages: list[dict[str, Any]]
    changes: tuple[HistoryChange, ...] = ()
    id_map: dict[str, str] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def report(self) -> list[dict[str, Any]]:
        """The changes as JSON-serialisable dicts."""
        return [c.as_dict() for c in self.changes]


# ---- fitting ---------------------------------------------------------------------------------------


class _Item:
    """A message being fitted, with the original index it started from."""

    __slots__ = ("msg", "origin")

    def __init__(self, msg: dict[str, Any], origin: int) -> None:
        self.msg = msg
        self.origin = origin

    @property
    def role(self) -> Any:
        return self.msg.get("role")


def fit_history(messages: Sequence[Mapping[str, Any]], rules: TemplateRules) -> FittedHistory:
    """The history reshaped to ``rules`` (see the module documentation), with a report of each change.

    Pure: the input is not modified; the output messages are new dicts (their unchanged values may be
    shared with the input)."""
    items = [_Item(dict(m), i) for i, m in enumerate(messages)]
    if not rules.any:
        return FittedHistory([it.msg for it in items])
    changes: list[HistoryChange] = []
    if rules.text_content:
        _flatten(items, changes)
    if rules.system_first or rules.alternate:
        items = _one_leading_system(items, changes)
    if rules.alternate:
        items = _alternate(items, changes)
    if rules.nonempty_assistant:
        _fill_assistant(items, changes)
    id_map: dict[str, str] = {}
    if rules.tool_call_id_format == "mistral9":
        id_map = rename_tool_call_ids(items, changes)
    return FittedHistory([it.msg for it in items], tuple(changes), id_map)


# the rules a template error names (templates.template_rule_of), each on its own
_RULE_OF_ERROR = {
    "alternate": TemplateRules(alternate=True),
    "system_first": TemplateRules(system_first=True),
    "tool_call_id": TemplateRules(tool_call_id_format="mistral9"),
}


def first_break(messages: Sequence[Mapping[str, Any]], rule: str | None) -> int | None:
    """The index of the first message that breaks ``rule`` (``"alternate"``, ``"system_first"`` or
    ``"tool_call_id"``, as a template error names it), i.e. the first message fitting to that rule would
    change; None when it changes nothing or the rule is not one of those (no guessing)."""
    rules = _RULE_OF_ERROR.get(rule or "")
    changes = fit_history(messages, rules).changes if rules is not None else ()
    return min((c.index for c in changes), default=None)


def _text_parts(content: list[Any]) -> list[str] | None:
    """The texts of a content list when every part is text-like, else None."""
    texts: list[str] = []
    for part in content:
        if not isinstance(part, Mapping) or part.get("type") not in _TEXT_PARTS:
            return None
        text = part.get("text")
        if not isinstance(text, str):
            return None
        texts.append(text)
    return texts


def _flatten(items: list[_Item], changes: list[HistoryChange]) -> None:
    for it in items:
        content = it.msg.get("content")
        if not isinstance(content, list):
            continue
        texts = _text_parts(content)
        if texts is None:
            continue
        it.msg["content"] = "\n".join(texts)
        kinds = sorted({str(p.get("type")) for p in content})
        changes.append(
            HistoryChange(
                "flattened_content",
                it.origin,
                f"message {it.origin} ({it.role}): {len(content)} text part(s) ({', '.join(kinds) or 'none'})"
                " joined into one string",
            )
        )


def _one_leading_system(items: list[_Item], changes: list[HistoryChange]) -> list[_Item]:
    lead: _Item | None = None
    rest: list[_Item] = []
    leading = True  # still inside the run of system messages that opens the history
    for it in items:
        if it.role != "system":
            leading = False
            rest.append(it)
            continue
        if lead is None:
            lead = it
            if not leading:
                changes.append(
                    HistoryChange(
                        "moved_system",
                        it.origin,
                        f"system message {it.origin} moved to the start (the template takes one system"
                        " message, at index 0)",
                    )
                )
            continue
        _merge(lead.msg, it.msg)
        if leading:
            changes.append(
                HistoryChange(
                    "merged_system",
                    it.origin,
                    f"system message {it.origin} merged into the system message {lead.origin}",
                )
            )
        else:
            changes.append(
                HistoryChange(
                    "moved_system",
                    it.origin,
                    f"system message {it.origin} moved into the leading system message (the template"
                    " takes one system message, at index 0)",
                )
            )
    return [lead, *rest] if lead is not None else rest


def _alternate(items: list[_Item], changes: list[HistoryChange]) -> list[_Item]:
    out: list[_Item] = []
    for it in items:
        role = it.role
        prev = out[-1] if out else None
        if prev is not None and role in ("user", "assistant") and prev.role == role:
            note = _merge(prev.msg, it.msg)
            changes.append(
                HistoryChange(
                    "merged_consecutive",
                    it.origin,
                    f"{role} message {it.origin} merged into the {role} message {prev.origin} before it"
                    f" (roles must alternate){note}",
                )
            )
            continue
        if role == "assistant" and all(o.role == "system" for o in out):
            out.append(_Item({"role": "user", "content": ""}, it.origin))
            changes.append(
                HistoryChange(
                    "inserted_user",
                    it.origin,
                    f"an empty user message inserted before assistant message {it.origin} (the"
                    " conversation must start with a user turn)",
                )
            )
        out.append(it)
    return out


def _merge(into: dict[str, Any], other: Mapping[str, Any]) -> str:
    """Merge ``other`` into ``into`` (same role): content, tool calls and reasoning joined, other keys
    kept from ``into`` (``other``'s added where ``into`` has none). Returns a note for the report."""
    into["content"] = _join_content(into.get("content"), other.get("content"))
    calls = [*(into.get("tool_calls") or ()), *(other.get("tool_calls") or ())]
    if calls:
        into["tool_calls"] = calls
    for key in _REASONING_KEYS:
        joined = _join_text(into.get(key), other.get(key))
        if joined is not None:
            into[key] = joined
    note = ""
    for key, value in other.items():
        if key in ("role", "content", "tool_calls", *_REASONING_KEYS):
            continue
        if key not in into:
            into[key] = value
        elif into[key] != value:
            note += f"; its {key} {value!r} differs, {into[key]!r} kept"
    return note


def _join_text(a: Any, b: Any) -> Any:
    if isinstance(a, str) and isinstance(b, str):
        return "\n\n".join(t for t in (a, b) if t)
    return a if b is None or b == "" else b if a is None or a == "" else a


def _join_content(a: Any, b: Any) -> Any:
    if (a is None or isinstance(a, str)) and (b is None or isinstance(b, str)):
        if a is None and b is None:
            return None
        return "\n\n".join(t for t in (a, b) if t)
    return [*_as_parts(a), *_as_parts(b)]


def _as_parts(content: Any) -> list[Any]:
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return list(content)
    return [content]


def _fill_assistant(items: list[_Item], changes: list[HistoryChange]) -> None:
    for it in items:
        if it.role == "assistant" and it.msg.get("content") is None:
            it.msg["content"] = ""
            beside = " beside its tool calls" if it.msg.get("tool_calls") else ""
            changes.append(
                HistoryChange(
                    "filled_empty_content",
                    it.origin,
                    f"assistant message {it.origin}: content None{beside} became an empty string",
                )
            )
