"""Event types of the test app, registered by the autodiscovery at start-up."""

from __future__ import annotations

from eventtracking import get_tracker

get_tracker().register(
    "shop.order.placed",
    "A customer placed an order.",
    {"order_id": {"description": "The order.", "type": "integer", "required": True}},
)
