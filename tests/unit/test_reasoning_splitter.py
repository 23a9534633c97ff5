"""The client-side ``<think>`` splitter (``engine_clients.dialects.reasoning``): a pure incremental codec.

Every streamed split is compared with :func:`reference`, a one-shot statement of the documented rules,
and with :func:`split_reasoning` on the whole text.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from engine_clients import InvalidRequestError
from engine_clients import ThinkSplitter
from engine_clients import ThinkTags
from engine_clients import split_reasoning

FAST = settings(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
PAIRS = [
    ThinkTags(),
    ThinkTags("[THINK]", "[/THINK]"),
    ThinkTags("<|begin_of_thought|>", "<|end_of_thought|>"),
    ThinkTags("◁think▷", "◁/think▷"),
    ThinkTags("<seed:think>", "</seed:think>"),
    ThinkTags("<t>", "<end>"),  # different first characters: both are watched for
]


def reference(text: str, tags: ThinkTags) -> tuple[str, str]:
    """(reasoning, answer) of a whole text, straight from the rules in the module docstring."""
    o, c = tags.open, tags.close
    rest = text.lstrip()
    if rest.startswith(o):
        body = rest[len(o) :].lstrip()
        i = body.find(c)
        return (body, "") if i < 0 else (body[:i], body[i + len(c) :].lstrip())
    i, j = text.find(c), text.find(o)
    if tags.implicit_open:
        text = text.lstrip()
        i = text.find(c)
        return (text, "") if i < 0 else (text[:i], text[i + len(c) :].lstrip())
    if i >= 0 and (j < 0 or i < j):  # a bare close tag: all before it was reasoning
        return text[:i], text[i + len(c) :].lstrip()
    return "", text


def stream(pieces: list[str], tags: ThinkTags | None) -> tuple[str, str, list[tuple[str, str]]]:
    """Feed pieces as a stream decoder does: answer returned before a bare close tag is moved to the
    reasoning (it was already shown as answer; the final result carries it as reasoning)."""
    splitter = ThinkSplitter(tags)
    reasoning: list[str] = []
    answer: list[str] = []
    outs = []
    for piece in [*pieces, None]:
        r, a = splitter.flush() if piece is None else splitter.feed(piece)
        outs.append((r, a))
        if splitter.relabel:
            splitter.relabel = False
            reasoning, answer = reasoning + answer, []
        reasoning.append(r)
        answer.append(a)
    return "".join(reasoning), "".join(answer), outs


def splits(text: str, n: int) -> list[list[str]]:
    """Every way to cut ``text`` into ``n`` consecutive (possibly empty) pieces."""
    out = []
    for cuts in itertools.combinations_with_replacement(range(len(text) + 1), n - 1):
        bounds = [0, *cuts, len(text)]
        out.append([text[a:b] for a, b in itertools.pairwise(bounds)])
    return out


CASES = [
    ("<think>abc</think>\n\nThe answer.", "abc", "The answer."),
    ("  \n<think>\nlet me see</think>Yes", "let me see", "Yes"),
    ("<think>\n\n</think>\n\nHello.", "", "Hello."),  # thinking off: the template's empty block
    ("no thinking at all", "", "no thinking at all"),
    ("I thought</think>  Done", "I thought", "Done"),  # missing opening tag
    ("<think>cut off by max_tokens", "cut off by max_tokens", ""),
    ("<think></think>empty", "", "empty"),
    ("a < b and <b>bold</b>", "", "a < b and <b>bold</b>"),
    ("x <think> y </think> z", "", "x <think> y </think> z"),  # a tag inside the answer is text
    ("<think>a</think>b</think>c", "a", "b</think>c"),  # only the first close tag ends the thinking
    ("<think>a<think>b</think>c", "a<think>b", "c"),  # nested open tag: reasoning text
    ("<thinking>not the tag", "", "<thinking>not the tag"),
    ("<thi", "", "<thi"),  # a lone partial tag at the end is text
    ("</thi", "", "</thi"),
    ("", "", ""),
]


@pytest.mark.parametrize(("text", "reasoning", "answer"), CASES)
def test_whole_text(text: str, reasoning: str, answer: str) -> None:
    assert reference(text, ThinkTags()) == (reasoning, answer)
    assert split_reasoning(text) == (reasoning or None, answer)


@pytest.mark.parametrize(("text", "reasoning", "answer"), CASES)
def test_every_two_and_three_piece_split(text: str, reasoning: str, answer: str) -> None:
    for pieces in splits(text, 2) + (splits(text, 3) if len(text) <= 30 else []):
        got = stream(pieces, ThinkTags())[:2]
        assert got == (reasoning, answer), pieces


def test_tag_split_at_every_position_is_never_returned_as_text() -> None:
    text = "<think>step one</think>final"
    for pieces in splits(text, 3):
        _, _, outs = stream(pieces, None)
        for r, a in outs:
            assert "<think>" not in r + a and "</think>" not in r + a
            assert not ("<" in a and "step" in a)


def test_per_character_stream_of_a_long_thought() -> None:
    text = "<think>" + "x < y; " * 50 + "</think>\n\n" + "answer " * 20
    assert stream(list(text), None)[:2] == reference(text, ThinkTags())


def test_missing_open_tag_in_a_stream_sets_relabel_once() -> None:
    splitter = ThinkSplitter()
    assert splitter.feed("I reason") == ("", "I reason")  # not knowable yet: answer
    assert splitter.feed(" more</th") == ("", " more")  # the partial tag is held back
    assert not splitter.relabel
    assert splitter.feed("ink>\nAnswer") == ("", "Answer")
    assert splitter.relabel  # the answer returned so far was reasoning
    assert splitter.feed(" </think> stays") == ("", " </think> stays")


def test_implicit_open_starts_in_the_reasoning() -> None:
    tags = ThinkTags(implicit_open=True)
    assert split_reasoning("I reason</think>\n\nAnswer", tags) == ("I reason", "Answer")
    assert split_reasoning("<think>explicit anyway</think>A", tags) == ("explicit anyway", "A")
    assert split_reasoning("no close tag: a cut-off thought", tags) == ("no close tag: a cut-off thought", "")
    splitter = ThinkSplitter(tags)
    assert splitter.thinking
    assert splitter.feed("abc") == ("abc", "")
    assert splitter.feed("</think>d") == ("", "d") and not splitter.relabel


def test_custom_tags() -> None:
    tags = ThinkTags("[THINK]", "[/THINK]")
    assert split_reasoning("[THINK]hmm[/THINK] ok", tags) == ("hmm", "ok")
    assert split_reasoning("<think>hmm</think> ok", tags) == (None, "<think>hmm</think> ok")
    assert stream(["[TH", "INK]h", "mm[/", "THI", "NK]ok"], tags)[:2] == ("hmm", "ok")


def test_fast_path_passes_pieces_whole() -> None:
    splitter = ThinkSplitter()
    splitter.feed("<think>\n")  # whitespace opening the reasoning is dropped, then the fast path
    splitter.feed("Hm")
    assert splitter.fast == ThinkSplitter.REASONING
    piece = "a long piece of reasoning with no tag character"
    r, a = splitter.feed(piece)
    assert r is piece and a == ""
    splitter.feed("</think>answer")
    assert splitter.fast == ThinkSplitter.PASS
    assert splitter.feed("<think>") == ("", "<think>")  # after the block, text is raw


def test_server_parsed_turns_the_splitter_off() -> None:
    splitter = ThinkSplitter()
    assert splitter.server_parsed()
    assert splitter.feed("</think> is literal") == ("", "</think> is literal")
    inside = ThinkSplitter()
    inside.feed("<think>a")
    assert not inside.server_parsed()  # an open block stays open


@pytest.mark.parametrize(("open_", "close"), [("", "</x>"), ("<x>", ""), ("<x>", "<x>")])
def test_bad_tags_are_refused(open_: str, close: str) -> None:
    with pytest.raises(InvalidRequestError):
        ThinkTags(open_, close)


ALPHABET = "ab <>/\n thinkTHINK[]|◁▷_"


def _fragments(tags: ThinkTags) -> st.SearchStrategy[str]:
    o, c = tags.open, tags.close
    return st.sampled_from([o, c, o[: len(o) // 2], c[: len(c) // 2], c[len(c) // 2 :], " ", "\n"])


@st.composite
def texts_and_cuts(draw: st.DrawFn) -> tuple[ThinkTags, str, list[int]]:
    base = draw(st.sampled_from(PAIRS))
    tags = ThinkTags(base.open, base.close, draw(st.booleans()))
    parts = draw(st.lists(st.one_of(st.text(ALPHABET, max_size=6), _fragments(tags)), max_size=10))
    text = "".join(parts)
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=8)))
    return tags, text, cuts


@settings(FAST, max_examples=400)
@given(case=texts_and_cuts())
def test_property_streaming_matches_the_rules_and_loses_no_text(case: tuple[ThinkTags, str, list[int]]) -> None:
    tags, text, cuts = case
    pieces = [text[a:b] for a, b in itertools.pairwise([0, *cuts, len(text)])]
    reasoning, answer, outs = stream(pieces, tags)
    assert (reasoning, answer) == reference(text, tags)
    whole_r, whole_a = split_reasoning(text, tags)
    assert (whole_r or "", whole_a) == (reasoning, answer)
    # no text is lost: putting the consumed tags back rebuilds the text, up to the whitespace dropped
    # before the opening tag and after the closing one
    o, c = tags.open, tags.close
    rebuilt = {reasoning + answer, o + reasoning, o + reasoning + c + answer, reasoning + c + answer}
    assert _squeeze(text) in {_squeeze(r) for r in rebuilt}
    assert len(reasoning) + len(answer) <= len(text)
    assert all(r in text and a in text for r, a in outs)  # pieces are slices of the text, never invented


def _squeeze(text: str) -> str:
    return "".join(text.split())
