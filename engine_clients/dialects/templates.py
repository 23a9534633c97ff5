"""Reading chat templates and the errors servers raise from them (see ``history.py`` for the fitting).

:func:`rules_from_template` infers a template's rules from its source (llama.cpp's ``/props`` returns it);
:func:`template_rule_of` recognises a server's error text as a chat-template failure and names the rule;
:func:`template_fix` is the sentence a :class:`~engine_clients.ChatTemplateError` tells the user.
"""

from __future__ import annotations

import re

from .history import TemplateRules

__all__ = ["HISTORY_FIX", "rules_from_template", "template_fix", "template_rule_of"]

# The policy name the clients accept for fitting a history (``history="fit"``).
HISTORY_FIX = 'pass history="fit"'

# ---- reading a template ----------------------------------------------------------------------------

_RAISE_CALL = re.compile(r"raise_exception\s*\(\s*(?P<q>['\"])(?P<text>.*?)(?P=q)\s*\)", re.DOTALL)
_ALTERNATE_TEXT = re.compile(r"must\s+alternate|alternat(?:e|ing)\s+user", re.IGNORECASE)
_SYSTEM_TEXT = re.compile(
    r"system\s+(?:message|prompt|role)s?\b[^.!\"']{0,60}?\b(?:beginning|first|start|index\s*0)",
    re.IGNORECASE,
)
_ID_TEXT = re.compile(
    r"tool[\s_]*call[\s_]*ids?\b[^.!\"']{0,80}?(?:length\s*(?:of\s*)?9|alphanumeric|9\s+char)", re.IGNORECASE
)
_ID_LENGTH_CHECK = re.compile(r"\bid\s*\|\s*length\s*(?:!=|==|<|>)\s*9\b")
_CONTENT_TEXT = re.compile(r"content[^.!\"']{0,60}?\bstring\b", re.IGNORECASE)
_CONTENT_CONCAT = re.compile(
    r"\+\s*message(?:\[\s*['\"]content['\"]\s*\]|\.content)(?![\w\[.|])"
    r"|message(?:\[\s*['\"]content['\"]\s*\]|\.content)\s*(?:\|\s*trim\s*)?\+"
)


def rules_from_template(template: str) -> TemplateRules:
    """The rules a Jinja chat template's source clearly enforces (conservative: a rule is on only when the
    template raises over it, or, for ``nonempty_assistant``, concatenates a message's content, which
    fails on None).

    - ``alternate``: a ``raise_exception`` whose text says the roles must alternate;
    - ``system_first``: a ``raise_exception`` saying the system message must be at the beginning / first;
    - ``text_content``: a ``raise_exception`` saying the content must be a string;
    - ``nonempty_assistant``: ``+ message['content']`` / ``message.content +`` string concatenation;
    - ``tool_call_id_format="mistral9"``: a ``tool_call.id|length != 9`` check, or a ``raise_exception``
      about tool-call ids of length 9 / alphanumeric.
    """
    if not isinstance(template, str) or not template:
        return TemplateRules.lenient()
    raised = [m.group("text") for m in _RAISE_CALL.finditer(template)]
    return TemplateRules(
        system_first=any(_SYSTEM_TEXT.search(t) for t in raised),
        alternate=any(_ALTERNATE_TEXT.search(t) for t in raised),
        text_content=any(_CONTENT_TEXT.search(t) for t in raised),
        nonempty_assistant=_CONTENT_CONCAT.search(template) is not None,
        tool_call_id_format=(
            "mistral9"
            if _ID_LENGTH_CHECK.search(template) or any(_ID_TEXT.search(t) for t in raised)
            else None
        ),
    )


# ---- reading a server's error ----------------------------------------------------------------------

# Errors that mention templates but are not about the history: a tool schema llama.cpp cannot turn into
# a grammar, a model with no chat template at all, llama-server started without --jinja.
_NOT_HISTORY = re.compile(
    r"json schema conversion failed|unrecognized schema|error parsing grammar|failed to parse grammar"
    r"|template not found|no chat template|provide a chat template|chat template is not set"
    r"|requires --jinja",
    re.IGNORECASE,
)
_ALTERNATE_ERROR = re.compile(
    r"must\s+alternate|cannot have 2 or more assistant messages"
    r"|unexpected role '?\w+'? after role",
    re.IGNORECASE,
)
_SYSTEM_ERROR = re.compile(
    r"system\s+(?:message|prompt)s?\s+(?:must|should|can\s+only|may\s+only)\s+(?:be|appear|come)\b"
    r"[^.!]{0,30}?\b(?:beginning|first|start)",
    re.IGNORECASE,
)
_ID_ERROR = re.compile(
    r"tool[\s_]*call[\s_]*ids?\b[^.!]{0,80}?(?:length\s*(?:of\s*)?9|alphanumeric|9\s+char)", re.IGNORECASE
)
_TEMPLATE_ERROR = re.compile(
    r"unable to generate parser for this template|jinja\s*exception|jinja2|templateerror"
    r"|templatesyntaxerror|template\s+error|raise_exception|error rendering (?:the )?(?:chat )?template"
    r"|chat template (?:error|failed)",
    re.IGNORECASE,
)


def template_rule_of(message: str, error_type: str | None = None) -> str | None:
    """The rule a server's error text says the chat template enforced, or None when the text is not a
    chat-template failure over the messages.

    ``"alternate"``, ``"system_first"`` or ``"tool_call_id"`` when the template's own exception text is
    recognised anywhere in the message (llama.cpp puts it at the end of "Unable to generate parser for
    this template. Automatic parser generation failed: ... Jinja Exception: ..."; vLLM answers a 400 with
    the exception text itself; TGI a 422 "Template error: ..."); ``"template"`` for a template failure
    whose rule is not recognised (llama.cpp's parser message, jinja2 ``TemplateError`` text,
    ``raise_exception``, TGI's "Template error"). Template problems that fitting cannot fix (no chat
    template, a tool schema llama.cpp cannot turn into a grammar, llama-server without ``--jinja``) are
    None. ``error_type``: the engine's error kind, when it has one; TGI's ``"template_error"`` makes any
    other message a ``"template"`` failure."""
    if not message or _NOT_HISTORY.search(message):
        return None
    if _ID_ERROR.search(message):
        return "tool_call_id"
    if _SYSTEM_ERROR.search(message):
        return "system_first"
    if _ALTERNATE_ERROR.search(message):
        return "alternate"
    if _TEMPLATE_ERROR.search(message) or error_type == "template_error":
        return "template"
    return None


def template_fix(rule: str | None) -> str:
    """The sentence telling the user what to do about a chat-template failure of ``rule``."""
    if rule == "alternate":
        return (
            f"{HISTORY_FIX} to merge consecutive user or assistant messages and start the conversation"
            " with a user turn"
        )
    if rule == "system_first":
        return f"{HISTORY_FIX} to move every system message into one system message at the start"
    if rule == "tool_call_id":
        return f"{HISTORY_FIX} to rewrite tool-call ids to the 9 letters or digits this template takes"
    return (
        f"{HISTORY_FIX} to fit the messages to the template (one leading system message, alternating"
        " roles, text content); if it still fails, the template cannot render this request"
    )
