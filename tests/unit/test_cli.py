"""The ``engine-clients`` command without servers: what ``import engine_clients`` must not import, the
help texts a newcomer reads, the demo's check of tool arguments, and the loadtest's figures on a stand-in
stream (the real-server runs are in ``tests/integration/test_cli_commands.py``)."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest
import respx

from engine_clients._cli import main
from engine_clients._cli import parser
from engine_clients._cli.demo import argument_problem
from engine_clients._loadtest import Stat
from engine_clients._loadtest import loadtest
from tests.support.fake_engines import LLAMACPP_MODELS
from tests.support.fake_engines import LLAMACPP_PROPS
from tests.support.mock_streams import sse

URL = "http://engine.test:8080"


def test_import_loads_neither_the_cli_nor_rich_nor_matplotlib() -> None:
    """What ``import engine_clients`` adds to what httpx imports (httpx imports rich itself for its own CLI
    when click, pygments and rich are all installed): never rich, matplotlib or the command's modules."""
    code = (
        "import sys, httpx; before = set(sys.modules); import engine_clients; "
        "added = {m.split('.')[0] for m in set(sys.modules) - before}; "
        "print(sorted(added & {'rich', 'matplotlib', 'pygments'}), "
        "sorted(m for m in sys.modules if m.split('.')[:2] in (['engine_clients', '_cli'], "
        "['engine_clients', '_doctor'], ['engine_clients', '_loadtest'])))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[] []"


def test_python_m_and_the_console_script_are_one_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "engine_clients", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    for command in ("demo", "doctor", "serve", "loadtest"):
        assert command in out.stdout
    from importlib.metadata import entry_points

    [script] = [e for e in entry_points(group="console_scripts") if e.name == "engine-clients"]
    assert script.value == "engine_clients._cli:main"


def test_demo_help_names_the_variables_and_the_key(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = capsys.readouterr().out
    for var in ("TGI_BASE_URL", "VLLM_BASE_URL", "LLAMACPP_BASE_URL", "LLAMACPP_API_KEY"):
        assert var in text
    [key] = [
        a
        for a in parser()._subparsers._group_actions[0].choices["demo"]._actions
        if "--api-key" in a.option_strings
    ]  # type: ignore[union-attr]
    assert key.help and "API key" in key.help


SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ({"city": "Paris"}, None),
        ({"a": "a"}, "unknown ['a']; missing ['city']"),
        ({"city": 3}, "wrong type for ['city']"),
        (None, "not a JSON object"),
    ],
)
def test_demo_says_when_arguments_do_not_fit(args: dict[str, object] | None, problem: str | None) -> None:
    found = argument_problem(args, SCHEMA, "Expecting value")
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_stat_is_nearest_rank() -> None:
    s = Stat.of([0.4, 0.1, 0.3, 0.2])
    assert (s.mean, s.p50, s.p90, s.p99) == pytest.approx((0.25, 0.2, 0.4, 0.4))
    assert Stat.of([]) == Stat(None, None, None, None)


def _llama_stream(request: httpx.Request) -> httpx.Response:
    chunk = {"object": "chat.completion.chunk", "model": "m"}
    events = [
        {**chunk, "choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}]} for t in "abcd"
    ]
    events.append(
        {
            **chunk,
            "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9},
        }
    )
    return httpx.Response(200, content=sse(*events), headers={"content-type": "text/event-stream"})


def test_loadtest_levels_count_tokens_and_errors() -> None:
    calls = {"n": 0}

    def answer(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 3:
            return httpx.Response(
                500, json={"error": {"code": 500, "message": "boom", "type": "server_error"}}
            )
        return _llama_stream(request)

    with respx.mock(assert_all_called=False) as router:
        router.get(f"{URL}/props").respond(200, json=LLAMACPP_PROPS)
        router.get(f"{URL}/v1/models").respond(200, json=LLAMACPP_MODELS)
        router.post(f"{URL}/v1/chat/completions").mock(side_effect=answer)
        router.route().respond(404)
        engine, [one, two] = loadtest(URL, [1, 2], requests={1: 3, 2: 4}, max_tokens=4)
    assert engine == "llamacpp"
    assert (one.concurrency, one.requests, one.errors, one.output_tokens) == (1, 3, 1, 8)
    assert one.error_kinds == {"InternalServerError": 1}
    assert (two.concurrency, two.requests, two.errors, two.output_tokens) == (2, 4, 0, 16)
    assert two.itl.p50 is not None and two.ttft.p99 is not None and two.tpot.mean is not None
    assert json.loads(json.dumps(two.to_dict()))["output_tokens_per_s"] > 0


def test_loadtest_without_rich_prints_a_plain_table(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "rich", None)  # rich is the [cli] extra
    with respx.mock(assert_all_called=False) as router:
        router.get(f"{URL}/props").respond(200, json=LLAMACPP_PROPS)
        router.get(f"{URL}/v1/models").respond(200, json=LLAMACPP_MODELS)
        router.post(f"{URL}/v1/chat/completions").mock(side_effect=_llama_stream)
        router.route().respond(404)
        code = main(["loadtest", URL, "--concurrency", "1,2", "--requests", "2", "--max-tokens", "4"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0 and lines[0] == f"loadtest llamacpp at {URL}"
    assert lines[1].split()[:3] == ["concurrency", "requests", "errors"]
    assert [line.split()[:3] for line in lines[3:]] == [["1", "2", "0"], ["2", "2", "0"]]
