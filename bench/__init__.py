"""Benchmark suite of engine_clients and its LangChain / LlamaIndex integrations against their peers.

Run ``bash bench/run.sh`` (creates ``.bench-venv`` and runs everything) or, inside that venv,
``python -m bench [--quick]``. See docs/benchmarks.md.
"""
