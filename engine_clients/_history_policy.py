"""``history=``: how a chat history meets the server's chat template (issue 19).

The fitting itself is a pure codec step (``dialects/history.py``); this module decides when it runs:

- ``"auto"`` (default): the history goes out exactly as given. When the server answers that its chat template
  refused it (a :class:`ChatTemplateError`: llama.cpp's 400 "Unable to generate parser for this template",
  vLLM's 400 with the Jinja exception, TGI's 422 "Template error"), the history is fitted to the strict rules
  (Mistral's 9-character tool-call ids when the error names them) and sent once more; the client remembers,
  so its later requests are fitted before they go out. A lenient server never sees a changed byte, and no
  request is spent asking the server for its template (vLLM and TGI do not publish it).
- ``"fit"``: always fitted to the strict rules; ``"mistral"``: strict plus 9-character tool-call ids.
- ``"keep"``: never changed; a template error is raised as :class:`ChatTemplateError` with the fix.
- a :class:`~engine_clients.dialects.history.TemplateRules`: always fitted to those rules.

Every change is reported in ``Completion.history_changes``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING
from typing import Literal

from ._requests import ChatRequest
from .dialects.base import HttpRequest
from .dialects.base import StreamDecoder
from .dialects.history import TemplateRules
from .dialects.history import first_break
from .dialects.history import fit_history
from .errors import ChatTemplateError
from .errors import EngineError
from .errors import InvalidRequestError

if TYPE_CHECKING:
    from .dialects.openai_compat import OpenAICompatDialect

__all__ = ["HISTORY_POLICIES", "ChatPlan", "HistoryPolicy", "check_policy"]

HistoryPolicy = Literal["auto", "fit", "mistral", "keep"] | TemplateRules
HISTORY_POLICIES = ("auto", "fit", "mistral", "keep")


def check_policy(policy: HistoryPolicy, engine: str) -> HistoryPolicy:
    if isinstance(policy, TemplateRules) or policy in HISTORY_POLICIES:
        return policy
    allowed = ", ".join(HISTORY_POLICIES)
    raise InvalidRequestError(
        f"history must be one of {allowed} or TemplateRules, not {policy!r}", engine=engine
    )


def _rules(policy: HistoryPolicy, learned: TemplateRules | None) -> TemplateRules | None:
    if isinstance(policy, TemplateRules):
        return policy
    if policy == "fit":
        return TemplateRules.strict()
    if policy == "mistral":
        return TemplateRules.mistral()
    return learned if policy == "auto" else None


class ChatPlan:
    """One chat call: the request to send, and (``history="auto"``) the one refit a template error earns."""

    __slots__ = ("auto", "decoder", "dialect", "http", "learn", "req", "rules", "stream")

    def __init__(
        self,
        dialect: OpenAICompatDialect,
        req: ChatRequest,
        stream: bool,
        policy: HistoryPolicy,
        learned: TemplateRules | None,
        learn: Callable[[TemplateRules], None],
    ) -> None:
        self.dialect = dialect
        self.req = req
        self.stream = stream
        self.auto = policy == "auto"
        self.learn = learn
        self.rules = _rules(policy, learned)
        self.http = self._build(self.rules)
        self.decoder: StreamDecoder | None = None  # a stream's decoder, told when the history changes

    def _build(self, rules: TemplateRules | None) -> HttpRequest:
        if rules is None:
            return self.dialect.build_chat(self.req, self.stream)
        fitted = fit_history(self.req.messages, rules)
        http = self.dialect.build_chat(dataclasses.replace(self.req, messages=fitted.messages), self.stream)
        return dataclasses.replace(http, history_changes=fitted.changes)

    def refit(self, err: EngineError) -> HttpRequest | None:
        """The request with the history fitted, when ``err`` is a template's refusal that fitting may cure
        (``history="auto"`` only, once per call); None otherwise, and the error stands, naming the message
        that broke the rule when the history went out as given."""
        if not isinstance(err, ChatTemplateError):
            return None
        http = self._refitted(err.rule) if self.auto else None
        if http is None and err.index is None and not self.http.history_changes:
            index = first_break(self.req.messages, err.rule)
            if index is not None:
                err.locate(index)
        return http

    def _refitted(self, rule: str | None) -> HttpRequest | None:
        rules = TemplateRules.mistral() if rule == "tool_call_id" else TemplateRules.strict()
        if rules == self.rules:
            return None  # already fitted so: the template wants what fitting cannot give
        http = self._build(rules)
        if not http.history_changes:
            return None  # nothing to change: sending it again would fail the same way
        self.learn(rules)
        self.rules, self.http = rules, http
        if self.decoder is not None:
            self.decoder.history_changes = http.history_changes
        return http
