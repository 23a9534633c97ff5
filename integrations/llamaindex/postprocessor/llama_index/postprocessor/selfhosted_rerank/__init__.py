"""A LlamaIndex reranker over llama-server (``--rerank``), vLLM or text-embeddings-inference:
:class:`SelfHostedRerank`, a ``BaseNodePostprocessor`` for ``node_postprocessors=[...]``."""

from ._base import SelfHostedRerank

__all__ = ["SelfHostedRerank"]
