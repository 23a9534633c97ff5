"""The client-side ``<think>`` splitter: a pure, incremental codec that separates a reasoning model's
thinking from its answer when the thinking arrives inside the content (TGI always; vLLM and llama.cpp
when no reasoning parser runs on the server). No I/O.

Feed content pieces in order, get back ``(reasoning, answer)`` pieces; :meth:`ThinkSplitter.flush` at
the end releases what was held back. The rules, with ``tags = ThinkTags(open, close, implicit_open)``:

- Output that starts (after optional whitespace) with ``open`` is reasoning until ``close``; the
  whitespace around ``open`` and right after ``close`` is dropped (so an empty think block, as templates
  emit when thinking is off, leaves no reasoning at all), both tags are removed, and everything
  after the block is answer, passed through unchanged (later tags in the answer are answer text).
- Output that does not start with ``open`` is answer, unless a *bare* ``close`` follows with no ``open``
  before it: then everything before that ``close`` was reasoning (the chat template had already opened
  the tag in the prompt). For one whole text (:func:`split_reasoning`) that split is exact. In a stream
  the pieces before the tag have already been returned as answer and cannot be recalled: the splitter
  sets :attr:`ThinkSplitter.relabel`, and stream decoders then move that text to the final
  ``Completion.reasoning`` (so ``chat`` and ``chat_stream``'s ``End`` agree) while the ``Token`` events
  already yielded stay as they were. Use ``implicit_open=True`` for such templates to get it right live.
- ``implicit_open=True`` starts inside the reasoning (an explicit leading ``open`` is still removed);
  text with no ``close`` at all is then all reasoning (a thought cut by ``max_tokens``).
- Tags split across pieces (``"<th"`` + ``"ink>"``) are recognised: a piece ending in a possible tag
  prefix is held back until the next piece decides. A piece that holds no tag's first character, while
  nothing is held back, passes straight through.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidRequestError

__all__ = ["DEFAULT_THINK_TAGS", "ThinkSplitter", "ThinkTags", "lstrip_newlines", "split_reasoning"]


@dataclass(frozen=True, slots=True)
class ThinkTags:
    """The tag pair a model wraps its thinking in, for clients' ``think_tags=`` (None there: leave the
    content raw). ``implicit_open``: the chat template puts ``open`` in the prompt, so the output starts
    inside the thinking and only ``close`` appears."""

    open: str = "<think>"
    close: str = "</think>"
    implicit_open: bool = False

    def __post_init__(self) -> None:
        if not self.open or not self.close or self.open == self.close:
            raise InvalidRequestError(f"think tags must be two different non-empty strings: {self!r}")


DEFAULT_THINK_TAGS = ThinkTags()

_START, _MAYBE, _THINK, _AFTER, _ANSWER, _LEAD = range(6)  # states; _LEAD: whitespace opening the reasoning
SLOW, FAST_ANSWER, FAST_REASONING, PASS = range(4)  # values of ThinkSplitter.fast


def _hold_from(buf: str, tag: str) -> int:
    """Where the longest suffix of ``buf`` that is a proper prefix of ``tag`` starts (``len(buf)``: none)."""
    n = len(buf)
    first = tag[0]
    j = buf.find(first, max(0, n - len(tag) + 1))
    while j >= 0:
        if tag.startswith(buf[j:]):
            return j
        j = buf.find(first, j + 1)
    return n


class ThinkSplitter:
    """Incremental ``<think>`` splitter for one output; see the module docstring for the rules.

    ``fast`` tells a caller on a hot path what :meth:`feed` would do with a piece that holds neither
    ``c1`` nor ``c2`` (the tags' first characters): ``ANSWER``/``REASONING`` pass it whole as that kind,
    ``PASS`` passes every piece as answer (the splitter is done), ``SLOW`` needs :meth:`feed`."""

    SLOW, ANSWER, REASONING, PASS = SLOW, FAST_ANSWER, FAST_REASONING, PASS
    __slots__ = ("c1", "c2", "close", "fast", "held", "implicit", "open", "relabel", "state")

    def __init__(self, tags: ThinkTags | None = None) -> None:
        tags = tags or ThinkTags()
        self.open = tags.open
        self.close = tags.close
        self.implicit = tags.implicit_open
        self.c1, self.c2 = tags.close[0], tags.open[0]
        self.state = _START
        self.fast = SLOW
        self.held = ""  # leading whitespace or a partial tag, not yet returned
        self.relabel = False  # a bare close tag: answer text returned before it was reasoning

    @property
    def thinking(self) -> bool:
        """Inside the reasoning now."""
        return self.state in (_THINK, _LEAD) or (self.state == _START and self.implicit)

    def feed(self, text: str) -> tuple[str, str]:
        """The next content piece in, ``(reasoning, answer)`` out (either may be empty)."""
        fast = self.fast
        if fast == PASS or (fast and self.c1 not in text and self.c2 not in text):
            return (text, "") if fast == FAST_REASONING else ("", text)
        return self._split(self.held + text)

    def flush(self) -> tuple[str, str]:
        """The output ended: whatever was held back, as ``(reasoning, answer)``."""
        held, self.held = self.held, ""
        self._settle()
        if self.state == _START and self.implicit:
            held = held.lstrip()  # whitespace opening the reasoning is dropped
        return (held, "") if self.thinking else ("", held)

    def server_parsed(self) -> bool:
        """The engine delivered the reasoning itself: unless a think block is open, the content is all
        answer from now on. True when the splitter has become a pass-through."""
        if self.state in (_START, _MAYBE) and not self.held:
            self.state = _ANSWER
            self._settle()
        return self.state == _ANSWER

    def _settle(self) -> None:
        state = self.state
        if state == _ANSWER:
            self.fast = PASS
        elif self.held or state not in (_MAYBE, _THINK):
            self.fast = SLOW
        else:
            self.fast = FAST_ANSWER if state == _MAYBE else FAST_REASONING

    def _split(self, buf: str) -> tuple[str, str]:
        self.held = ""
        reasoning = answer = ""
        while buf:
            state = self.state
            if state == _START:
                rest = buf.lstrip()
                if rest.startswith(self.open):
                    self.state, buf = _LEAD, rest[len(self.open) :]
                elif not rest or self.open.startswith(rest):
                    self.held = buf  # whitespace or a partial open tag: undecided
                    break
                else:
                    self.state = _LEAD if self.implicit else _MAYBE
            elif state == _LEAD:
                buf = buf.lstrip()
                if buf:
                    self.state = _THINK
            elif state == _THINK:
                i = buf.find(self.close)
                if i >= 0:
                    reasoning += buf[:i]
                    self.state, buf = _AFTER, buf[i + len(self.close) :]
                else:
                    k = _hold_from(buf, self.close)
                    reasoning += buf[:k]
                    self.held = buf[k:]
                    break
            elif state == _AFTER:
                buf = buf.lstrip()
                if buf:
                    self.state = _ANSWER
            elif state == _MAYBE:
                o, c = buf.find(self.open), buf.find(self.close)
                if o >= 0 and (c < 0 or o < c):  # an opening tag inside the answer: plain text
                    self.state = _ANSWER
                elif c >= 0:  # a bare close tag: what came before it was reasoning
                    self.relabel = True
                    reasoning += buf[:c]
                    self.state, buf = _AFTER, buf[c + len(self.close) :]
                else:
                    k = min(_hold_from(buf, self.close), _hold_from(buf, self.open))
                    answer += buf[:k]
                    self.held = buf[k:]
                    break
            else:  # _ANSWER
                answer += buf
                break
        self._settle()
        return reasoning, answer


def split_reasoning(text: str, tags: ThinkTags | None = None) -> tuple[str | None, str]:
    """``(reasoning or None, answer)`` of one whole text, with the rules of :class:`ThinkSplitter`."""
    splitter = ThinkSplitter(tags)
    r1, a1 = splitter.feed(text)
    r2, a2 = splitter.flush()
    return (r1 + r2) or None, a1 + a2


def lstrip_newlines(text: str) -> str:
    """``text`` without its leading line breaks (``\\n`` and ``\\r\\n``; spaces stay). The answer after a
    reasoning the engine parsed out then starts the same on every engine: vLLM leaves the newline that
    followed ``</think>`` (``"\\n Hello"``), llama.cpp does not (``" Hello"``)."""
    i, n = 0, len(text)
    while i < n:
        if text[i] == "\n":
            i += 1
        elif text.startswith("\r\n", i):
            i += 2
        else:
            break
    return text[i:] if i else text
