"""Keep or drop events whose names match regular expressions (Open edX `RegexFilter`)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any, Final

from ..exceptions import ImproperlyConfigured
from .exceptions import EventEmissionExit

logger = logging.getLogger(__name__)

ALLOWLIST: Final = "allowlist"
BLOCKLIST: Final = "blocklist"


class RegexFilter:
    """``allowlist``: keep only names that match; ``blocklist``: drop names that match.

    Expressions match at the start of the name (`re.match`), as in Open edX.
    An unknown filter type or an invalid expression raises ImproperlyConfigured
    with Open edX's message, followed by what exactly is wrong.
    """

    def __init__(
        self, filter_type: str = ALLOWLIST, regular_expressions: Iterable[str] | None = None
    ) -> None:
        if filter_type not in (ALLOWLIST, BLOCKLIST):
            detail = f"filter_type must be {ALLOWLIST!r} or {BLOCKLIST!r}, not {filter_type!r}"
            logger.error("RegexFilter: %s", detail)
            raise ImproperlyConfigured(f"Invalid filter type is configured: {detail}")
        if isinstance(regular_expressions, str):
            raise ImproperlyConfigured(
                "RegexFilter regular_expressions must be a list of patterns, not one string"
            )
        self.filter_type = filter_type
        # A list in the given order (as Open edX keeps it): a set would fail on
        # unhashable items and sorting on mixed types, before the check below.
        self.regular_expressions = list(regular_expressions or ())
        compiled = []
        invalid = []
        for expression in self.regular_expressions:
            if not isinstance(expression, str):
                invalid.append(f"{expression!r} (not a string)")
                continue
            try:
                compiled.append(re.compile(expression))
            except re.error as exc:
                invalid.append(f"{expression!r} ({exc})")
        if invalid:
            detail = ", ".join(invalid)
            logger.error("RegexFilter: invalid regular expressions: %s", detail)
            raise ImproperlyConfigured(f"Invalid Regular Expressions are configured: {detail}")
        self.compiled_expressions = compiled

    def __call__(self, event: Any) -> Any:
        name = event["name"]
        matched = any(expression.match(name) for expression in self.compiled_expressions)
        if matched == (self.filter_type == ALLOWLIST):
            return event
        raise EventEmissionExit()
