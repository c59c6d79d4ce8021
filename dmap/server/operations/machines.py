"""State machine operations: CreateStateMachine, DescribeStateMachine, ListStateMachines, ..."""

from __future__ import annotations
