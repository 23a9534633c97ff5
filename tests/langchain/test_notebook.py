"""The LangChain quickstart notebook runs top to bottom against a real llama-server (nbclient)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from engine_clients.testing import EngineServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "langchain_quickstart.ipynb"


def test_notebook_is_committed_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    assert all(not c.outputs and c.execution_count is None for c in code)


def test_notebook_runs_with_nothing_configured(
    llama_server: EngineServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A newcomer's first run: no environment variable, so the notebook starts the embedded default.
    (``llama_server`` only makes sure the engine is provisioned; the notebook starts its own.)"""
    for var in ("LLAMACPP_BASE_URL", "LLAMACPP_API_KEY", "VLLM_BASE_URL", "TGI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)  # the kernel inherits the environment
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    ).execute()
    outputs = [
        "".join(out.get("text", "") for out in cell.outputs) for cell in nb.cells if cell.cell_type == "code"
    ]
    text = "\n".join(outputs)
    assert "starting the embedded llama-server" in text
    assert llama_server.base_url not in text
    assert "Hello world." in text  # the scripted model's streamed answer
    assert "finish reason: stop" in text
    tool_cell = next((out for out in outputs if "answer:" in out and "rag answer:" not in out), "")
    assert "tool call: get_weather" in tool_cell, tool_cell  # the cell's own output, for a failure
    assert "Person(name=" in text
    assert "too long:" in text
    assert "retrieved: ['weather in paris today']" in text  # embeddings + reranker on the embedded servers
    assert "rag answer:" in text
