"""A LlamaIndex reranker over llama-server (``--rerank``), vLLM, text-embeddings-inference or SGLang:
:class:`SelfHostedRerank`, a ``BaseNodePostprocessor`` for ``node_postprocessors=[...]``."""

from ._base import SelfHostedRerank

__all__ = ["SelfHostedRerank"]
