"""Task handlers of the demo: price one order (a stand-in for real per-item work).

Workers import this module (``dmap worker --import examples.demo.handlers``). An order with a
line whose quantity is not positive raises :class:`InvalidOrder`; the demo data holds three such
orders, which the Map tolerates (``ToleratedFailurePercentage: 5``) and reports in the
ResultWriter's ``FAILED_0.json``.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

import dmap

TAX_RATE = 0.2
WORK_SECONDS = 0.02
"""Simulated work per order, so the children overlap and the scaling of workers shows."""


class InvalidOrder(Exception):
    """An order that cannot be priced (its Error name in the results is ``InvalidOrder``)."""


@dmap.task("PriceOrder")
def price_order(event: dict[str, Any], context: dmap.TaskContext) -> dict[str, Any]:
    """Price one order: subtotal, tax and total, plus which worker process did it.

    Args:
        event: ``{"index": item index, "order": {"id", "customer", "lines": [{"sku", "qty", "price"}]}}``.
        context: The Lambda-style context.

    Returns:
        ``{"order", "customer", "items", "subtotal", "tax", "total", "worker"}``.

    Raises:
        InvalidOrder: A line's quantity is not positive.
    """
    order = event["order"]
    for line in order["lines"]:
        if line["qty"] <= 0:
            raise InvalidOrder(f"order {order['id']}: quantity {line['qty']} of {line['sku']} is not positive")
    time.sleep(WORK_SECONDS)
    subtotal = round(sum(line["qty"] * line["price"] for line in order["lines"]), 2)
    tax = round(subtotal * TAX_RATE, 2)
    return {
        "order": order["id"],
        "customer": order["customer"],
        "items": sum(line["qty"] for line in order["lines"]),
        "subtotal": subtotal,
        "tax": tax,
        "total": round(subtotal + tax, 2),
        "worker": f"{socket.gethostname()}:{os.getpid()}",
    }
