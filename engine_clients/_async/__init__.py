"""The one source of the package's I/O orchestration, written async.

``engine_clients/_sync/`` is generated from these files by ``scripts/unasync.py`` (``achat`` -> ``chat``,
``await x`` -> ``x``, ...), committed, and checked for freshness by the test command: edit here, then run
``python scripts/unasync.py``. What cannot be written once (the pool's wait for a free slot, ``close`` and
``aclose``) is hand-written beside the shared state in ``_client_core.py`` and ``_pool.py``.
"""
