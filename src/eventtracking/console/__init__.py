"""The console: live events, charts, the catalogue and delivery health in a browser.

Application code on top of the core (nothing in the core imports it), served
by ``eventtracking serve`` (needs the console extra: ``pip install
'event-tracking[console]'``) or inside a Django project
(`eventtracking.django.console_urls`). `open_console` builds one over any
store the command line reads; `create_app` (in ``app``) wraps it as an ASGI
application.
"""

from __future__ import annotations

from .factory import open_console
from .service import Console, Reply

__all__ = ["Console", "Reply", "open_console"]
