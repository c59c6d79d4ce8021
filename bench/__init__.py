"""Benchmarks of dmap (not tests): ``python -m bench.engine``, ``python -m bench.network`` and ``python -m bench.interpreter``.

They print numbers and assert nothing. See each module's docstring for what it measures.
"""

from __future__ import annotations
