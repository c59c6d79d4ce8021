"""Fixtures for the ResultWriter tests."""

from __future__ import annotations

import pytest

from .support import MemoryStorage


@pytest.fixture
def memory_storage() -> MemoryStorage:
    """An empty in-memory storage with one bucket, ``results``."""
    return MemoryStorage()
