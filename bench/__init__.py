"""Benchmarks of dmap (not tests): ``python -m bench.engine``, ``bench.network`` and ``bench.interpreter``.

They print numbers and assert nothing. See each module's docstring for what it measures.
"""

from __future__ import annotations
