"""History fitting for strict chat templates, template-rule inference, and template errors from servers."""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from engine_clients import BadRequestError
from engine_clients import ChatTemplateError
from engine_clients import InternalServerError
from engine_clients.dialects import LlamaCppDialect
from engine_clients.dialects import TGIDialect
from engine_clients.dialects import VLLMDialect
from engine_clients.dialects.history import FittedHistory
from engine_clients.dialects.history import HistoryChange
from engine_clients.dialects.history import TemplateRules
from engine_clients.dialects.history import fit_history
from engine_clients.dialects.templates import rules_from_template
from engine_clients.dialects.templates import template_fix
from engine_clients.dialects.templates import template_rule_of

TEXT_TYPES = ("text", "input_text", "output_text")


# ---- the checker ------------------------------------------------------------------------------------


def _text_only(content: Any) -> bool:
    return isinstance(content, list) and all(
        isinstance(p, Mapping) and p.get("type") in TEXT_TYPES and isinstance(p.get("text"), str) for p in content
    )


def check_strict(messages: Sequence[Mapping[str, Any]], mistral: bool = False) -> None:
    """What a strict template (Gemma/Mistral/Qwen3.5-like) demands, with this package's turn definition:
    one system message, only at index 0; then user and assistant turns alternate starting with user, an
    assistant turn being an assistant message plus any "tool results, assistant message" groups after it;
    string content wherever the content is only text; no None assistant content."""
    roles = [m["role"] for m in messages]
    assert roles.count("system") <= 1, roles
    if "system" in roles:
        assert roles[0] == "system", roles
    body = messages[1:] if roles and roles[0] == "system" else messages
    turns: list[str] = []
    prev: str | None = None
    for m in body:
        role = m["role"]
        if role == "tool":
            assert prev in ("assistant", "tool"), f"tool result outside an assistant turn: {roles}"
        elif not (role == "assistant" and prev == "tool"):
            turns.append(role)
        prev = role
    assert turns == [("user", "assistant")[i % 2] for i in range(len(turns))], roles
    for m in messages:
        content = m.get("content")
        assert isinstance(content, str) or (isinstance(content, list) and not _text_only(content)), m
        if m["role"] == "assistant":
            assert content is not None
        if mistral:
            for call in m.get("tool_calls") or ():
                assert len(call["id"]) == 9 and call["id"].isascii() and call["id"].isalnum(), call
            if m["role"] == "tool":
                tid = m["tool_call_id"]
                assert len(tid) == 9 and tid.isascii() and tid.isalnum(), m


def kinds(fitted: FittedHistory) -> list[tuple[str, int]]:
    return [(c.kind, c.index) for c in fitted.changes]


def call(id: str, name: str = "lookup", args: str = '{"q": "x"}') -> dict[str, Any]:
    return {"id": id, "type": "function", "function": {"name": name, "arguments": args}}


# ---- the named histories under strict rules --------------------------------------------------------

STRICT = TemplateRules.strict()


def test_several_system_messages_at_the_start() -> None:
    history = [
        {"role": "system", "content": "You are terse."},
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Hi"},
    ]
    fitted = fit_history(history, STRICT)
    check_strict(fitted.messages)
    assert fitted.messages[0] == {"role": "system", "content": "You are terse.\n\nAnswer in French."}
    assert kinds(fitted) == [("merged_system", 1)]


def test_system_message_in_the_middle_moves_to_the_front() -> None:
    history = [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": "A1"},
        {"role": "system", "content": "Summary of earlier turns: ..."},  # LangGraph summarization
        {"role": "user", "content": "Q2"},
    ]
    fitted = fit_history(history, STRICT)
    check_strict(fitted.messages)
    assert [m["role"] for m in fitted.messages] == ["system", "user", "assistant", "user"]
    assert fitted.messages[0]["content"] == "Be kind.\n\nSummary of earlier turns: ..."
    assert kinds(fitted) == [("moved_system", 3)]


def test_late_system_message_without_a_leading_one_becomes_the_leading_one() -> None:
    history = [{"role": "user", "content": "Q"}, {"role": "system", "content": "late"}, {"role": "user", "content": "Q2"}]
    fitted = fit_history(history, STRICT)
    check_strict(fitted.messages)
    assert fitted.messages == [{"role": "system", "content": "late"}, {"role": "user", "content": "Q\n\nQ2"}]
    assert kinds(fitted) == [("moved_system", 1), ("merged_consecutive", 2)]


def test_consecutive_user_messages_are_merged() -> None:
    history = [
        {"role": "user", "content": "first"},
        {"role": "user", "content": "second"},
        {"role": "user", "content": "third"},
        {"role": "assistant", "content": "ok"},
    ]
    fitted = fit_history(history, STRICT)
    check_strict(fitted.messages)
    assert fitted.messages[0] == {"role": "user", "content": "first\n\nsecond\n\nthird"}
    assert kinds(fitted) == [("merged_consecutive", 1), ("merged_consecutive", 2)]


def test_consecutive_assistant_messages_are_merged_with_their_tool_calls() -> None:
    history = [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": "Let me look.", "tool_calls": [call("a", "weather")]},
        {"role": "assistant", "content": None, "tool_calls": [call("b", "weather")]},
        {"role": "tool", "tool_call_id": "a", "content": "sunny"},
        {"role": "tool", "tool_call_id": "b", "content": "rain"},
        {"role": "assistant", "content": "Paris sunny,"},
        {"role": "assistant", "content": "Rome rainy."},
    ]
    fitted = fit_history(history, STRICT)
    check_strict(fitted.messages)
    merged = fitted.messages[1]
    assert merged["content"] == "Let me look."
    assert [c["id"] for c in merged["tool_calls"]] == ["a", "b"]
    assert fitted.messages[-1] == {"role": "assistant", "content": "Paris sunny,\n\nRome rainy."}
    assert kinds(fitted) == [("merged_consecutive", 2), ("merged_consecutive", 6)]


def test_assistant_message_first_gets_an_empty_user_message_before_it() -> None:
    history = [
        {"role": "system", "content": "sys"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke"},
    ]
    fitted = fit_history(history, STRICT)
    check_strict(fitted.messages)
    assert fitted.messages[1] == {"role": "user", "content": ""}
    assert fitted.messages[2:] == history[1:]
    assert kinds(fitted) == [("inserted_user", 1)]


def test_tool_results_followed_by_a_user_turn_need_nothing() -> None:
    history = [
        {"role": "user", "content": "Q"},
        {"role": "assistant", "content": "", "tool_calls": [call("c1")]},
        {"role": "tool", "tool_call_id": "c1", "content": "result"},
        {"role": "user", "content": "and then?"},
    ]
    fitted = fit_history(history, STRICT)
    check_strict(fitted.messages)
    assert fitted.messages == history
    assert fitted.changes == ()


def test_empty_assistant_content_beside_tool_calls_becomes_an_empty_string() -> None:
    history = [
        {"role": "user", "content": "Q"},
        {"role": "assistant", "content": None, "tool_calls": [call("c1")]},
        {"role": "tool", "tool_call_id": "c1", "content": "result"},
        {"role": "assistant", "tool_calls": [call("c2")]},  # no content key at all
        {"role": "tool", "tool_call_id": "c2", "content": "result 2"},
    ]
    fitted = fit_history(history, STRICT)
    check_strict(fitted.messages)
    assert fitted.messages[1]["content"] == "" and fitted.messages[3]["content"] == ""
    assert kinds(fitted) == [("filled_empty_content", 1), ("filled_empty_content", 3)]
    assert history[1]["content"] is None and "content" not in history[3]  # the input is untouched


def test_text_parts_are_flattened_including_responses_style_blocks() -> None:
    history = [
        {"role": "system", "content": [{"type": "text", "text": "sys"}]},
        {"role": "user", "content": [{"type": "input_text", "text": "line 1"}, {"type": "text", "text": "line 2"}]},
        {"role": "assistant", "content": [{"type": "output_text", "text": "answer", "annotations": []}]},
        {"role": "user", "content": []},
    ]
    fitted = fit_history(history, STRICT)
    check_strict(fitted.messages)
    assert [m["content"] for m in fitted.messages] == ["sys", "line 1\nline 2", "answer", ""]
    assert kinds(fitted) == [("flattened_content", i) for i in range(4)]


def test_images_are_kept_and_merged_as_parts() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    history = [
        {"role": "user", "content": [{"type": "text", "text": "what is this?"}, image]},
        {"role": "user", "content": "be brief"},
    ]
    fitted = fit_history(history, STRICT)
    check_strict(fitted.messages)
    assert fitted.messages == [
        {"role": "user", "content": [{"type": "text", "text": "what is this?"}, image, {"type": "text", "text": "be brief"}]}
    ]
    assert kinds(fitted) == [("merged_consecutive", 1)]


def test_merging_keeps_reasoning_and_reports_differing_names() -> None:
    history = [
        {"role": "user", "content": "hi", "name": "alice"},
        {"role": "user", "content": "hello", "name": "bob"},
        {"role": "assistant", "content": "a", "reasoning": "think 1"},
        {"role": "assistant", "content": "b", "reasoning": "think 2"},
    ]
    fitted = fit_history(history, STRICT)
    assert fitted.messages[0]["name"] == "alice"
    assert "'bob'" in fitted.changes[0].detail
    assert fitted.messages[1]["reasoning"] == "think 1\n\nthink 2"


def test_other_roles_pass_through() -> None:
    history = [{"role": "developer", "content": "dev"}, {"role": "user", "content": "Q"}]
    fitted = fit_history(history, STRICT)
    assert fitted.messages == history and fitted.changes == ()


# ---- tool-call ids ------------------------------------------------------------------------------------


def test_mistral_ids_are_rewritten_consistently_and_mapped_back() -> None:
    history = [
        {"role": "user", "content": "Q"},
        {"role": "assistant", "content": None, "tool_calls": [call("call_abc123"), call("ABCdef123"), call("x")]},
        {"role": "tool", "tool_call_id": "call_abc123", "content": "1"},
        {"role": "tool", "tool_call_id": "ABCdef123", "content": "2"},
        {"role": "tool", "tool_call_id": "x", "content": "3"},
    ]
    fitted = fit_history(history, TemplateRules.mistral())
    check_strict(fitted.messages, mistral=True)
    ids = [c["id"] for c in fitted.messages[1]["tool_calls"]]
    assert ids[1] == "ABCdef123"  # already fits: kept
    assert [m["tool_call_id"] for m in fitted.messages[2:]] == ids
    assert fitted.id_map == {ids[0]: "call_abc123", ids[2]: "x"}
    assert len(set(ids)) == 3
    assert kinds(fitted) == [
        ("filled_empty_content", 1),
        ("renamed_tool_call_id", 1),
        ("renamed_tool_call_id", 2),
        ("renamed_tool_call_id", 4),
    ]
    # deterministic: the same history gives the same ids, so a growing conversation keeps its prefix
    assert fit_history(history, TemplateRules.mistral()).messages == fitted.messages
    assert history[1]["tool_calls"][0]["id"] == "call_abc123"


def test_mistral_ids_are_collision_free() -> None:
    originals = [f"call_{i}" for i in range(300)]
    history: list[dict[str, Any]] = [{"role": "user", "content": "Q"}]
    history.append({"role": "assistant", "content": "", "tool_calls": [call(i) for i in originals]})
    history += [{"role": "tool", "tool_call_id": i, "content": "r"} for i in originals]
    fitted = fit_history(history, TemplateRules.mistral())
    new = [c["id"] for c in fitted.messages[1]["tool_calls"]]
    assert len(set(new)) == len(originals)
    assert [fitted.id_map[n] for n in new] == originals


def test_strict_rules_leave_ids_alone() -> None:
    history = [
        {"role": "user", "content": "Q"},
        {"role": "assistant", "content": "", "tool_calls": [call("call_1")]},
        {"role": "tool", "tool_call_id": "call_1", "content": "r"},
    ]
    fitted = fit_history(history, STRICT)
    assert fitted.messages == history and fitted.id_map == {}


def test_rules_validate_the_id_format() -> None:
    with pytest.raises(ValueError, match="tool_call_id_format"):
        TemplateRules(tool_call_id_format="mistral")
    assert not TemplateRules.lenient().any and TemplateRules.strict().any


def test_changes_are_json_serialisable() -> None:
    fitted = fit_history([{"role": "assistant", "content": None}], TemplateRules.mistral())
    assert json.loads(json.dumps(fitted.report())) == [c.as_dict() for c in fitted.changes]
    assert HistoryChange("inserted_user", 0, "x").as_dict() == {"kind": "inserted_user", "index": 0, "detail": "x"}


# ---- properties ---------------------------------------------------------------------------------------

_texts = st.text(min_size=1, max_size=12)
_text_part = st.builds(lambda t, kind: {"type": kind, "text": t}, _texts, st.sampled_from(TEXT_TYPES))
_image = st.just({"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}})
_content = st.one_of(
    _texts,
    st.lists(_text_part, min_size=1, max_size=3),
    st.lists(st.one_of(_text_part, _image), min_size=1, max_size=3),
)
_ids = st.sampled_from(["call_1", "call_2", "abc", "ABCDEFGHI", "012345678", "x" * 20, "tool-call.7"])


@st.composite
def _block(draw: st.DrawFn) -> list[dict[str, Any]]:
    kind = draw(st.sampled_from(["system", "user", "user", "assistant", "assistant", "tools"]))
    if kind in ("system", "user"):
        return [{"role": kind, "content": draw(_content)}]
    if kind == "assistant":
        msg: dict[str, Any] = {"role": "assistant", "content": draw(st.one_of(st.none(), _content))}
        if draw(st.booleans()):
            msg["reasoning"] = draw(_texts)
        return [msg]
    ids = draw(st.lists(_ids, min_size=1, max_size=3))
    calls = [call(i, args=json.dumps({"q": draw(_texts)})) for i in ids]
    assistant: dict[str, Any] = {"role": "assistant", "tool_calls": calls}
    content = draw(st.one_of(st.none(), st.just(""), _texts, st.just("<absent>")))
    if content != "<absent>":
        assistant["content"] = content
    results = [{"role": "tool", "tool_call_id": i, "content": draw(_content)} for i in ids]
    return [assistant, *results]


histories = st.lists(_block(), min_size=1, max_size=8).map(lambda blocks: [m for b in blocks for m in b])
all_rules = st.sampled_from([TemplateRules.strict(), TemplateRules.mistral(), TemplateRules.lenient()])
PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _texts_of(message: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    content = message.get("content")
    if isinstance(content, str):
        out.append(content)
    elif isinstance(content, list):
        out += [p["text"] for p in content if isinstance(p.get("text"), str)]
    for key in ("reasoning", "reasoning_content"):
        if isinstance(message.get(key), str):
            out.append(message[key])
    out += [c["function"]["arguments"] for c in message.get("tool_calls") or ()]
    return [t for t in out if t]


@PROPS
@given(histories, all_rules)
def test_fitting_never_drops_text(history: list[dict[str, Any]], rules: TemplateRules) -> None:
    fitted = fit_history(history, rules)
    for message in history:
        blobs = ["\x00".join(_texts_of(m)) for m in fitted.messages if m["role"] == message["role"]]
        for text in _texts_of(message):
            assert any(text in blob for blob in blobs), (text, message["role"])


@PROPS
@given(histories, all_rules)
def test_every_move_and_merge_is_reported(history: list[dict[str, Any]], rules: TemplateRules) -> None:
    fitted = fit_history(history, rules)
    out = fitted.messages
    by_kind: dict[str, list[int]] = {}
    for change in fitted.changes:
        assert 0 <= change.index < len(history)
        by_kind.setdefault(change.kind, []).append(change.index)
    if not rules.any:
        assert fitted.changes == ()
        return
    systems = [i for i, m in enumerate(history) if m["role"] == "system"]
    reported = sorted(by_kind.get("merged_system", []) + by_kind.get("moved_system", []))
    assert reported == [i for i in systems if i > 0]
    for i in by_kind.get("merged_system", []):  # merged: part of the opening run of system messages
        assert all(m["role"] == "system" for m in history[:i])
    assert sum(m["role"] == "system" for m in out) == min(1, len(systems))
    merged = by_kind.get("merged_consecutive", [])
    for role in ("user", "assistant"):
        n_merged = sum(history[i]["role"] == role for i in merged)
        n_inserted = len(by_kind.get("inserted_user", [])) if role == "user" else 0
        assert sum(m["role"] == role for m in out) == sum(m["role"] == role for m in history) - n_merged + n_inserted
    assert sum(m["role"] == "tool" for m in out) == sum(m["role"] == "tool" for m in history)


@PROPS
@given(histories)
def test_lenient_rules_return_the_original(history: list[dict[str, Any]]) -> None:
    fitted = fit_history(history, TemplateRules.lenient())
    assert json.dumps(fitted.messages) == json.dumps(history)
    assert fitted.changes == () and fitted.id_map == {}


@PROPS
@given(histories, all_rules)
def test_fitting_is_idempotent_and_pure(history: list[dict[str, Any]], rules: TemplateRules) -> None:
    before = copy.deepcopy(history)
    fitted = fit_history(history, rules)
    assert history == before
    again = fit_history(fitted.messages, rules)
    assert again.changes == ()
    assert again.messages == fitted.messages


@PROPS
@given(histories, st.sampled_from([TemplateRules.strict(), TemplateRules.mistral()]))
def test_strict_fitting_satisfies_the_checker(history: list[dict[str, Any]], rules: TemplateRules) -> None:
    fitted = fit_history(history, rules)
    check_strict(fitted.messages, mistral=rules.tool_call_id_format == "mistral9")
    if rules.tool_call_id_format:  # every id that did not fit was renamed, and maps back
        bad = {c["id"] for m in history for c in m.get("tool_calls") or () if c["id"] not in ("ABCDEFGHI", "012345678")}
        assert set(fitted.id_map.values()) == bad


# ---- rules from a template's source -------------------------------------------------------------------

GEMMA_LIKE = """{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- set role = "model" if message['role'] == 'assistant' else message['role'] -%}
    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}{{ message['content'] | trim }}{%- endif -%}
    {{ '<end_of_turn>\\n' }}
{%- endfor -%}
"""

QWEN_LIKE = """{%- for message in messages %}
    {%- if message.role == "system" %}
        {%- if not loop.first %}
            {{- raise_exception('System message must be at the beginning.') }}
        {%- endif %}
    {%- endif %}
    {%- set content = message.content if message.content is string else '' %}
    {{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>' + '\\n' }}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}
"""

MISTRAL_LIKE = """{%- set ns = namespace(index=0) %}
{%- for message in loop_messages %}
    {%- if not (message.role == "tool" or (message.tool_calls is defined and message.tool_calls is not none)) %}
        {%- if (message["role"] == "user") != (ns.index % 2 == 0) %}
            {{- raise_exception("After the optional system message, conversation roles must alternate user/assistant/user/assistant/...") }}
        {%- endif %}
        {%- set ns.index = ns.index + 1 %}
    {%- endif %}
{%- endfor %}
{%- for message in loop_messages %}
    {%- if message["role"] == "user" %}
        {{- "[INST] " + message["content"] + "[/INST]" }}
    {%- elif message.tool_calls is defined and message.tool_calls is not none %}
        {%- for tool_call in message.tool_calls %}
            {%- if not tool_call.id is defined or tool_call.id|length != 9 %}
                {{- raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}
            {%- endif %}
        {%- endfor %}
    {%- elif message["role"] == "assistant" %}
        {{- " " + message["content"]|trim + eos_token}}
    {%- endif %}
{%- endfor %}
"""

PLAIN = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"


def test_rules_from_a_gemma_like_template() -> None:
    assert rules_from_template(GEMMA_LIKE) == TemplateRules(alternate=True)


def test_rules_from_a_qwen_like_template() -> None:
    assert rules_from_template(QWEN_LIKE) == TemplateRules(system_first=True)


def test_rules_from_a_mistral_like_template() -> None:
    assert rules_from_template(MISTRAL_LIKE) == TemplateRules(
        alternate=True, nonempty_assistant=True, tool_call_id_format="mistral9"
    )


def test_rules_from_a_permissive_template_are_lenient() -> None:
    assert rules_from_template(PLAIN) == TemplateRules.lenient()
    assert rules_from_template("") == TemplateRules.lenient()
    # a message about the system prompt that is not a position rule does not switch system_first on
    assert not rules_from_template("{{ raise_exception('System role not supported') }}").system_first


def test_rules_from_template_alternate_also_fixes_a_late_system_message() -> None:
    history = [{"role": "user", "content": "Q"}, {"role": "system", "content": "S"}, {"role": "user", "content": "Q2"}]
    fitted = fit_history(history, rules_from_template(GEMMA_LIKE))
    assert [m["role"] for m in fitted.messages] == ["system", "user"]


# ---- a server's error text ------------------------------------------------------------------------------

LLAMA_SYSTEM = (
    "Unable to generate parser for this template. Automatic parser generation failed: \n------------\n"
    "While executing CallExpression at line 110\nError: Jinja Exception: System message must be at the beginning."
)
LLAMA_ALTERNATE = (
    "Unable to generate parser for this template. Automatic parser generation failed: \n------------\n"
    "While executing CallExpression at line 12\nError: Jinja Exception: Conversation roles must alternate "
    "user/assistant/user/assistant/..."
)
LLAMA_UNKNOWN = (
    "Unable to generate parser for this template. Automatic parser generation failed: While executing "
    "CallExpression at line 7, column 21 in source:\n...{{ raise_exception(...) }}"
)
VLLM_ALTERNATE = (
    "Conversation roles must alternate user/assistant/user/assistant/... "
    "Conversation roles must alternate user/assistant/user/assistant/..."
)


@pytest.mark.parametrize(
    ("message", "rule"),
    [
        (LLAMA_SYSTEM, "system_first"),
        (LLAMA_ALTERNATE, "alternate"),
        (LLAMA_UNKNOWN, "template"),
        (VLLM_ALTERNATE, "alternate"),
        ("System message must be at the beginning. None", "system_first"),
        (
            "After the optional system message, conversation roles must alternate user/assistant/user/assistant/...",
            "alternate",
        ),
        ("Tool call IDs should be alphanumeric strings with length 9!", "tool_call_id"),
        ("Tool call id was call_abc but must be a-z, A-Z, 0-9, with a length of 9.", "tool_call_id"),
        ("Unexpected role 'user' after role 'user'", "alternate"),
        ("Cannot have 2 or more assistant messages at the end of the list.", "alternate"),
        (
            "Template error: syntax error: Conversation roles must alternate user/assistant/user/assistant/... "
            "(in <string>:1)",
            "alternate",
        ),
        ("Template error: invalid operation: object has no method named strip (in <string>:1)", "template"),
        ("jinja2.exceptions.TemplateError: Only user and assistant roles are supported!", "template"),
        ("Error: Jinja Exception: Object key of unhashable type: Array", "template"),
        # not chat-template failures over the messages
        ("tools param requires --jinja flag", None),
        (
            'Unable to generate parser for this template. Automatic parser generation failed: JSON schema '
            'conversion failed:\nUnrecognized schema: "object"',
            None,
        ),
        ("Template error: template not found", None),
        ("Input validation error: `stop` supports up to 4 stop sequences. Given: 5", None),
        ("the request exceeds the available context size, try increasing it", None),
        ("Tool call id abc has no matching tool call", None),
        ("", None),
    ],
)
def test_template_rule_of(message: str, rule: str | None) -> None:
    assert template_rule_of(message) == rule


def test_template_rule_of_takes_tgi_error_type() -> None:
    assert template_rule_of("something the template did", "template_error") == "template"
    assert template_rule_of("Template error: template not found", "template_error") is None


def test_template_fix_names_the_policy() -> None:
    for rule in ("alternate", "system_first", "tool_call_id", "template", None):
        assert 'history="fit"' in template_fix(rule)


# ---- the typed error ------------------------------------------------------------------------------------

LLAMA_BODY = (
    b'{"error":{"code":400,"message":"Unable to generate parser for this template. Automatic parser generation '
    b'failed: While executing CallExpression at line 7...","type":"invalid_request_error"}}'
)


def test_parse_error_llamacpp_template_failure() -> None:
    dialect = LlamaCppDialect()
    err = dialect.parse_error(400, LLAMA_BODY)
    assert type(err) is ChatTemplateError
    assert isinstance(err, BadRequestError)
    assert err.rule == "template" and err.index is None
    assert err.fix is not None and 'history="fit"' in err.fix
    assert err.status_code == 400 and err.error_type == "invalid_request_error" and err.engine == dialect.engine
    assert "Unable to generate parser" in str(err) and "rule 'template'" in str(err) and 'history="fit"' in str(err)


def test_parse_error_vllm_and_tgi_template_failures() -> None:
    body = json.dumps({"error": {"message": VLLM_ALTERNATE, "type": "BadRequestError", "param": None, "code": 400}})
    err = VLLMDialect().parse_error(400, body.encode())
    assert isinstance(err, ChatTemplateError) and err.rule == "alternate"
    body = json.dumps(
        {"error": "Template error: syntax error: System message must be at the beginning. (in <string>:3)",
         "error_type": "template_error"}
    )
    err = TGIDialect().parse_error(422, body.encode())
    assert isinstance(err, ChatTemplateError) and err.rule == "system_first" and err.error_type == "template_error"
    assert 'history="fit"' in (err.fix or "")


def test_parse_error_keeps_other_mappings() -> None:
    err = LlamaCppDialect().parse_error(
        500, b'{"error":{"code":500,"message":"tools param requires --jinja flag","type":"server_error"}}'
    )
    assert type(err) is InternalServerError
    err = TGIDialect().parse_error(422, b'{"error":"Input validation error: bad","error_type":"validation"}')
    assert type(err) is BadRequestError
    err = LlamaCppDialect().parse_error(503, b'{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}')
    assert not isinstance(err, ChatTemplateError)


def test_chat_template_error_names_rule_index_and_fix_and_pickles() -> None:
    err = ChatTemplateError(
        "Conversation roles must alternate", rule="alternate", index=3, fix=template_fix("alternate"), status_code=400
    )
    text = str(err)
    assert "rule 'alternate'" in text and "message 3" in text and 'history="fit"' in text
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is ChatTemplateError
    assert (back.rule, back.index, back.fix, back.status_code) == ("alternate", 3, err.fix, 400)
    assert str(back) == text


def test_langchain_error_conversion() -> None:
    lc = pytest.importorskip("langchain_selfhosted.errors")
    err = LlamaCppDialect().parse_error(400, LLAMA_BODY)
    converted = lc.to_langchain_error(err)
    assert isinstance(converted, lc.ChatTemplateError) and isinstance(converted, ChatTemplateError)
    assert converted.rule == "template"
