"""Reading a Map Run's exported results back and checking them item by item; the suite's numbers.

:func:`audit_results` reads ``manifest.json`` and every result file it lists, places each record's
item (from its ``Input``) in SUCCEEDED, FAILED or PENDING, and counts what is missing (lost), what
appears more than once (double-counted), which successful outputs are wrong, and which files lie in
the Map Run's folder without being listed. :class:`Numbers` is one scenario's line of the table
printed at the end of the session. This module checks; it never runs anything.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from dmap.writers import result_base

from . import flows

GROUPS = ("SUCCEEDED", "FAILED", "PENDING")


@dataclass
class Audit:
    """What the result files of one Map Run hold, item by item.

    Attributes:
        items: Items expected (indexes ``0 .. items - 1``).
        by_group: Records per result group.
        lost: Item indexes found in no file.
        double: Item indexes found more than once (in one group or across groups).
        wrong_output: Item indexes whose SUCCEEDED record's Output is not the handler's result.
        strangers: Item indexes outside ``0 .. items - 1``.
        orphans: Objects in the Map Run's folder that the manifest does not list.
        failed_errors: Error name -> FAILED records with it.
        groups: Item index -> its group (the first one seen).
    """

    items: int
    by_group: dict[str, int] = field(default_factory=dict)
    lost: list[int] = field(default_factory=list)
    double: list[int] = field(default_factory=list)
    wrong_output: list[int] = field(default_factory=list)
    strangers: list[int] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    failed_errors: Counter[str] = field(default_factory=Counter)
    groups: dict[int, str] = field(default_factory=dict)

    def check_counts(self, item_counts: dict[str, int]) -> None:
        """Assert that the Map Run's itemCounts equal what the files hold."""
        failed = item_counts["failed"] + item_counts["timedOut"] + item_counts["aborted"]
        seen = (self.by_group["SUCCEEDED"], self.by_group["FAILED"], self.by_group["PENDING"])
        assert (item_counts["succeeded"], failed, item_counts["pending"]) == seen, (item_counts, self.by_group)
        assert item_counts["total"] == self.items, (item_counts, self.items)
        assert item_counts["resultsWritten"] == self.by_group["SUCCEEDED"] + self.by_group["FAILED"], item_counts

    def check_clean(self) -> None:
        """Assert that every item is in exactly one file and every success carries its own output."""
        assert not self.lost, f"{len(self.lost)} items in no result file, e.g. {self.lost[:10]}"
        assert not self.double, f"{len(self.double)} items written more than once, e.g. {self.double[:10]}"
        assert not self.strangers, f"records of unknown items {self.strangers[:10]}"
        assert not self.wrong_output, f"wrong outputs for items {self.wrong_output[:10]}"
        assert not self.orphans, f"files not in the manifest: {self.orphans}"


def _index(record: dict[str, Any]) -> int:
    child_input = json.loads(record["Input"]) if isinstance(record["Input"], str) else record["Input"]
    return int(child_input["v"]["i"])


def audit_results(s3: Any, bucket: str, run_id: str, items: int) -> Audit:
    """Read the manifest and every result file of Map Run ``run_id`` and place each item.

    Args:
        s3: A boto3 S3 client.
        bucket: The ResultWriter's bucket.
        run_id: The Map Run id (its result folder).
        items: How many items the run had.
    """
    base = result_base(flows.RESULTS_PREFIX, run_id)
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=base + "manifest.json")["Body"].read())
    found = Audit(items, by_group=dict.fromkeys(GROUPS, 0))
    seen: Counter[int] = Counter()
    listed = {base + "manifest.json"}
    for group in GROUPS:
        for entry in manifest["ResultFiles"].get(group, []):
            listed.add(entry["Key"])
            body = s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
            assert len(body) == entry["Size"], (entry, len(body))
            for record in json.loads(body):
                index = _index(record)
                seen[index] += 1
                found.by_group[group] += 1
                found.groups.setdefault(index, group)
                if group == "SUCCEEDED" and json.loads(record["Output"]) != flows.expected_output(index):
                    found.wrong_output.append(index)
                if group == "FAILED":
                    found.failed_errors[str(record.get("Error", ""))] += 1
    found.lost = [i for i in range(items) if i not in seen]
    found.double = sorted(i for i, n in seen.items() if n > 1)
    found.strangers = sorted(i for i in seen if not 0 <= i < items)
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=base)
    present = {obj["Key"] for page in pages for obj in page.get("Contents", [])}
    found.orphans = sorted(present - listed)
    return found


@dataclass
class Numbers:
    """One scenario's line of the session's fault-injection table.

    Attributes:
        scenario: A short name.
        items: Items in the run.
        faults: What was injected and how often (``"7 worker SIGKILLs"``).
        lost: Items in no result file (must be 0).
        double: Items counted or written more than once (must be 0).
        reruns: Handler runs beyond one per item (at-least-once execution: allowed after a crash).
        recovery_s: Time to recover (the scenario says from what to what), or None.
        seconds: Wall time of the whole run.
        outcome: The run's final status (and error).
    """

    scenario: str
    items: int
    faults: str
    lost: int
    double: int
    reruns: int
    recovery_s: float | None
    seconds: float
    outcome: str


_RECORDED: list[Numbers] = []


def record(numbers: Numbers) -> None:
    """Keep one scenario's numbers for the table printed at the end of the session."""
    _RECORDED.append(numbers)


def table() -> list[str]:
    """The recorded numbers as aligned text lines (empty when no scenario ran)."""
    if not _RECORDED:
        return []
    head = ("scenario", "items", "faults injected", "lost", "double", "re-runs", "recovery s", "run s", "outcome")
    rows = [head] + [
        (
            n.scenario,
            str(n.items),
            n.faults,
            str(n.lost),
            str(n.double),
            str(n.reruns),
            "-" if n.recovery_s is None else f"{n.recovery_s:.2f}",
            f"{n.seconds:.1f}",
            n.outcome,
        )
        for n in sorted(_RECORDED, key=lambda n: n.scenario)
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
