"""``notebooks/llamaindex_quickstart.ipynb`` runs top to bottom (nbclient) against a real llama-server.
(That it is committed without outputs is checked in ``test_units.py``: no server needed.)"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from engine_clients.testing import EngineServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "llamaindex_quickstart.ipynb"


def _text(nb: nbformat.NotebookNode) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if "text" in out:
                parts.append(out["text"])
            parts.extend(str(v) for k, v in out.get("data", {}).items() if k == "text/plain")
    return "\n".join(parts)


def test_quickstart_notebook_runs(llama_server: EngineServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A newcomer's first run: no environment variable, so the notebook starts the embedded default.
    (``llama_server`` only makes sure the engine is provisioned; the notebook starts its own.)"""
    for var in ("LLAMACPP_BASE_URL", "LLAMACPP_API_KEY", "OPENAI_API_KEY"):  # nothing in it may need a key
        monkeypatch.delenv(var, raising=False)

    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    ).execute()

    out = _text(nb)
    assert "starting the embedded llama-server" in out
    server_url = re.search(r"server: (http://\S+)", out)
    assert server_url and server_url.group(1) != llama_server.base_url
    context = re.search(r"context_window=(\d+)", out)
    assert context and int(context.group(1)) >= 1024  # the metadata came from the server
    assert "answer:  Hello world." in out  # the query engine, through the scripted model
    assert "usage: {'prompt_tokens'" in out
    assert "City(name='a'" in out  # structured output, schema-constrained
    # the agent: the tool ran with the engine's arguments, then the model answered
    tool_line = out.index("tool get_weather({'city': 'a'}) -> It is sunny in a.\n")
    assert out.index("answer: Hello world.", tool_line) > tool_line
    assert "retrieved: ['weather in paris today']" in out  # the self-hosted RAG picked the right document
    assert "rag answer:" in out
