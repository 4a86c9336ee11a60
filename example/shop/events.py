"""The shop's event types, registered at start-up by eventtracking's autodiscovery."""

from __future__ import annotations

from eventtracking import get_tracker

tracker = get_tracker()
tracker.register(
    "shop.order.placed",
    "A customer placed an order (emitted when the order's transaction commits).",
    {
        "order_id": {"description": "The order id.", "type": "integer", "required": True},
        "item": {"description": "What was bought.", "type": "string", "required": True},
    },
)
tracker.register(
    "client.video.played",
    "The visitor pressed play on the demo video (sent from the browser).",
    {
        "video_id": {"description": "Which video.", "type": "string", "required": True},
        "position": {"description": "Seconds from the start.", "type": "number"},
    },
)
tracker.register(
    "client.page.viewed",
    "A page of the shop was shown (sent from the browser).",
    {"title": "The page title."},
)
tracker.register(
    "server.request",
    "One HTTP request served (EVENT_TRACKING_REQUEST_EVENT); secrets in GET/POST are masked.",
    {
        "method": {"description": "The HTTP method.", "type": "string", "required": True},
        "status": {"description": "The response status code.", "type": "integer"},
        "GET": {
            "description": "The query parameters, values cut to 512 characters.",
            "type": "object",
        },
        "POST": {"description": "The form fields, passwords and tokens masked.", "type": "object"},
    },
)
