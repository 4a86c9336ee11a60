"""The Django settings this app reads, checked once into typed fields.

Every ``EVENT_TRACKING_*`` setting is optional. `get_conf()` returns the
checked values (cached; the cache is dropped when a test changes a setting
with ``override_settings``). A bad value raises `ImproperlyConfigured` whose
message starts with the setting's name and says what to write instead; the
system checks (`eventtracking.django.checks`) report the same message at
start-up.

The component trees ``EVENT_TRACKING_BACKENDS`` and ``EVENT_TRACKING_PROCESSORS``
are not read here: `DjangoTracker` builds them through `eventtracking.config`.
"""

from __future__ import annotations

import fnmatch
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from ..config import import_object
from ..exceptions import ImproperlyConfigured
from ..registry.model import POLICIES, Policy
from ..tracker import ENVELOPES, Envelope

__all__ = ["BrowserConf", "Conf", "ContextProvider", "Rate", "get_conf", "load_conf"]

ContextProvider = Callable[[Any, Mapping[str, Any]], Mapping[str, Any] | None]
"""``provider(request, view_kwargs) -> mapping or None``: extra request-context fields."""

DEFAULT_PROVIDERS: Final = ("eventtracking.django.context.course_context",)
DEFAULT_IGNORE_URL_PATTERNS: Final = (r"^/event", r"^/heartbeat")
DEFAULT_BROWSER_NAME_PATTERNS: Final = (r"^client\.",)
_PERIODS: Final = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_RATE: Final = re.compile(r"\s*(\d+)\s*/\s*(\d*)\s*([smhd])\w*\s*")


@dataclass(frozen=True)
class Rate:
    """A token bucket: `burst` events at once, refilled at `per_second`."""

    burst: int
    per_second: float


@dataclass(frozen=True)
class BrowserConf:
    """Limits of the browser endpoint (setting ``EVENT_TRACKING_BROWSER``)."""

    name_patterns: tuple[re.Pattern[str], ...]
    max_body_bytes: int = 65_536
    max_depth: int = 8
    max_events: int = 50
    max_name_length: int = 128
    session_rate: Rate | None = Rate(600, 10.0)
    ip_rate: Rate | None = Rate(3000, 50.0)
    rate_limit_cache: str | None = None  # a CACHES alias: buckets shared by every worker


@dataclass(frozen=True)
class Conf:
    """Every checked setting; see README "Django" for what each does."""

    enabled: bool
    validation: Policy
    envelope: Envelope
    max_event_size: int | None
    catalogue: tuple[Path, ...]
    autodiscover: bool
    trusted_proxy_count: int
    request_id_header: str | None  # a request.META key, e.g. HTTP_X_REQUEST_ID
    client_id_cookie: str | None
    providers: tuple[ContextProvider, ...]
    request_event: str | None
    ignore_url_patterns: tuple[re.Pattern[str], ...]
    on_commit: re.Pattern[str] | None
    browser: BrowserConf
    store: str | None


_cached: Conf | None = None
_lock = threading.Lock()


def get_conf() -> Conf:
    """The checked settings (cached until a setting changes); ImproperlyConfigured if bad."""
    global _cached
    conf = _cached
    if conf is None:
        with _lock:
            conf = _cached = load_conf()
    return conf


@receiver(setting_changed)
def _forget(setting: str, **kwargs: Any) -> None:
    global _cached
    if setting.startswith(("EVENT_TRACKING_", "TRACKING_")) or setting == "BASE_DIR":
        _cached = None


def load_conf() -> Conf:
    """Read and check every setting now (no cache); ImproperlyConfigured names the bad one."""
    return Conf(
        enabled=_bool("EVENT_TRACKING_ENABLED", False),
        validation=_choice("EVENT_TRACKING_VALIDATION", "warn", POLICIES),  # type: ignore[arg-type]
        envelope=_choice("EVENT_TRACKING_ENVELOPE", "openedx", ENVELOPES),  # type: ignore[arg-type]
        max_event_size=_optional_int("EVENT_TRACKING_MAX_EVENT_SIZE", minimum=1),
        catalogue=tuple(_base_dir() / p for p in _strings("EVENT_TRACKING_CATALOGUE", ())),
        autodiscover=_bool("EVENT_TRACKING_AUTODISCOVER", False),
        trusted_proxy_count=_int("EVENT_TRACKING_TRUSTED_PROXY_COUNT", 0, minimum=0),
        request_id_header=_meta_key(_optional_str("EVENT_TRACKING_REQUEST_ID_HEADER")),
        client_id_cookie=_optional_str("EVENT_TRACKING_CLIENT_ID_COOKIE", "_ga"),
        providers=tuple(
            _callable(f"EVENT_TRACKING_CONTEXT_PROVIDERS[{i}]", path)
            for i, path in enumerate(
                _strings("EVENT_TRACKING_CONTEXT_PROVIDERS", DEFAULT_PROVIDERS)
            )
        ),
        request_event=_optional_str("EVENT_TRACKING_REQUEST_EVENT"),
        ignore_url_patterns=_regexes(
            "TRACKING_IGNORE_URL_PATTERNS",
            _strings("TRACKING_IGNORE_URL_PATTERNS", DEFAULT_IGNORE_URL_PATTERNS),
        ),
        on_commit=_globs("EVENT_TRACKING_ON_COMMIT", _strings("EVENT_TRACKING_ON_COMMIT", ())),
        browser=_browser(),
        store=_optional_str("EVENT_TRACKING_STORE"),
    )


# -- readers: each error starts with the setting's name ------------------------------


def _get(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


def _bool(name: str, default: bool) -> bool:
    value = _get(name, default)
    if not isinstance(value, bool):
        raise ImproperlyConfigured(f"{name}: must be True or False, not {value!r}")
    return value


def _int(name: str, default: int, minimum: int) -> int:
    value = _get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ImproperlyConfigured(f"{name}: must be an integer >= {minimum}, not {value!r}")
    return value


def _optional_int(name: str, minimum: int) -> int | None:
    if _get(name, None) is None:
        return None
    return _int(name, 0, minimum)


def _optional_str(name: str, default: str | None = None) -> str | None:
    value = _get(name, default)
    if value is not None and (not isinstance(value, str) or not value):
        raise ImproperlyConfigured(f"{name}: must be a non-empty string or None, not {value!r}")
    return value


def _choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = _get(name, default)
    if value not in choices:
        raise ImproperlyConfigured(f"{name}: must be one of {list(choices)}, not {value!r}")
    return str(value)


def _strings(name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = _get(name, default)
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ImproperlyConfigured(f"{name}: must be a list of strings, not {value!r}")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise ImproperlyConfigured(f"{name}[{i}]: must be a string, not {item!r}")
    return tuple(value)


def _regexes(name: str, patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    compiled = []
    for i, pattern in enumerate(patterns):
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            raise ImproperlyConfigured(
                f"{name}[{i}]: {pattern!r} is not a regular expression: {exc}"
            ) from exc
    return tuple(compiled)


def _globs(name: str, patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    """One regex matching any of the names or globs (``edx.course.*``), or None for none."""
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


def _callable(name: str, path: str) -> ContextProvider:
    target = import_object(path, name)
    if not callable(target):
        raise ImproperlyConfigured(f"{name}: {path!r} is not callable")
    provider: ContextProvider = target
    return provider


def _meta_key(header: str | None) -> str | None:
    """``X-Request-ID`` -> ``HTTP_X_REQUEST_ID`` (how Django names headers in META)."""
    if header is None:
        return None
    return "HTTP_" + header.upper().replace("-", "_")


def _base_dir() -> Path:
    base = _get("BASE_DIR", None)
    return Path(base) if base is not None else Path.cwd()


def _rate(name: str, value: Any) -> Rate | None:
    """``"600/m"`` (600 at once, 600 a minute), ``"10/s"``, ``"100/5m"``; None = no limit."""
    if value is None:
        return None
    match = _RATE.fullmatch(value) if isinstance(value, str) else None
    if match is None or int(match[1]) < 1:
        raise ImproperlyConfigured(
            f"{name}: write a rate as 'COUNT/PERIOD' such as '600/m', '10/s' or '100/5m' "
            f"(or None for no limit), not {value!r}"
        )
    seconds = _PERIODS[match[3]] * (int(match[2]) if match[2] else 1)
    return Rate(int(match[1]), int(match[1]) / seconds)


_BROWSER_KEYS: Final = (
    "NAME_PATTERNS",
    "MAX_BODY_BYTES",
    "MAX_DEPTH",
    "MAX_EVENTS",
    "MAX_NAME_LENGTH",
    "RATE_LIMIT",
    "RATE_LIMIT_CACHE",
)


def _browser() -> BrowserConf:
    name = "EVENT_TRACKING_BROWSER"
    value = _get(name, {})
    if not isinstance(value, Mapping):
        raise ImproperlyConfigured(f"{name}: must be a dict with keys {list(_BROWSER_KEYS)}")
    unknown = sorted(set(value) - set(_BROWSER_KEYS))
    if unknown:
        raise ImproperlyConfigured(
            f"{name}: unknown key(s) {unknown}; valid keys: {list(_BROWSER_KEYS)}"
        )
    patterns = value.get("NAME_PATTERNS", DEFAULT_BROWSER_NAME_PATTERNS)
    if isinstance(patterns, str) or not isinstance(patterns, list | tuple):
        raise ImproperlyConfigured(f"{name}.NAME_PATTERNS: must be a list of regular expressions")
    for i, pattern in enumerate(patterns):
        if not isinstance(pattern, str):
            raise ImproperlyConfigured(f"{name}.NAME_PATTERNS[{i}]: must be a string")
    defaults = BrowserConf(name_patterns=())
    sizes = {}
    for key in ("MAX_BODY_BYTES", "MAX_DEPTH", "MAX_EVENTS", "MAX_NAME_LENGTH"):
        size = value.get(key, getattr(defaults, key.lower()))
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ImproperlyConfigured(f"{name}.{key}: must be a positive integer, not {size!r}")
        sizes[key.lower()] = size
    limits = value.get("RATE_LIMIT", {"session": "600/m", "ip": "3000/m"})
    if limits is None:
        limits = {"session": None, "ip": None}
    if not isinstance(limits, Mapping) or set(limits) - {"session", "ip"}:
        raise ImproperlyConfigured(
            f"{name}.RATE_LIMIT: must be a dict with keys 'session' and 'ip' "
            f"(each a rate such as '600/m', or None), not {limits!r}"
        )
    return BrowserConf(
        name_patterns=_regexes(f"{name}.NAME_PATTERNS", tuple(patterns)),
        session_rate=_rate(f"{name}.RATE_LIMIT.session", limits.get("session")),
        ip_rate=_rate(f"{name}.RATE_LIMIT.ip", limits.get("ip")),
        rate_limit_cache=_cache_alias(f"{name}.RATE_LIMIT_CACHE", value.get("RATE_LIMIT_CACHE")),
        **sizes,
    )


def _cache_alias(name: str, alias: Any) -> str | None:
    """A key of ``CACHES`` (the shared rate limit's cache), or None for per-process buckets."""
    if alias is None:
        return None
    caches = _get("CACHES", {"default": {}})
    if not isinstance(alias, str) or alias not in caches:
        raise ImproperlyConfigured(
            f"{name}: must name a cache in CACHES ({sorted(caches)}) that every worker "
            f"shares, such as a database or Redis cache, or be None; not {alias!r}"
        )
    if str(caches[alias].get("BACKEND", "")).endswith(".DummyCache"):
        raise ImproperlyConfigured(
            f"{name}: CACHES[{alias!r}] is a DummyCache, which keeps nothing, so nothing "
            "would be limited; name a database, Redis or Memcached cache"
        )
    return alias
