"""``notebooks/llamaindex_quickstart.ipynb`` runs top to bottom (nbclient) against a real llama-server.
(That it is committed without outputs is checked in ``test_units.py``: no server needed.)"""

from __future__ import annotations

import os
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
    monkeypatch.setenv("LLAMACPP_BASE_URL", llama_server.base_url)
    if llama_server.api_key:
        monkeypatch.setenv("LLAMACPP_API_KEY", llama_server.api_key)
    else:
        monkeypatch.delenv("LLAMACPP_API_KEY", raising=False)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # nothing in it may need one

    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    ).execute()

    out = _text(nb)
    assert f"server: {llama_server.base_url}" in out
    assert "context_window=1024" in out  # the metadata came from the server
    assert "answer:  Hello world." in out  # the query engine, through the scripted model
    assert "usage: {'prompt_tokens'" in out
    assert "City(name='a'" in out  # structured output, schema-constrained
    # the agent: the tool ran with the engine's arguments, then the model answered
    tool_line = out.index("tool get_weather({'city': 'a'}) -> It is sunny in a.\n")
    assert out.index("answer: Hello world.", tool_line) > tool_line
