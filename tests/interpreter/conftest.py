"""Fixtures of the interpreter tests (the helpers themselves are in ``support.py``)."""

from __future__ import annotations

import pytest

from .support import Harness


@pytest.fixture
def sfn() -> Harness:
    """A fresh harness: empty registry, fake clock at 2024-01-01T00:00:00Z."""
    return Harness()
