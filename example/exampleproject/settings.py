"""Settings of the example project: Open edX's EVENT_TRACKING_BACKENDS shape plus a SQLite store.

Files (the database, events.db, tracking.log) go to $EXAMPLE_DATA_DIR, else
to example/var/ (ignored by git, created on start). Not for production: DEBUG
is on and the secret is public.
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("EXAMPLE_DATA_DIR", BASE_DIR / "var"))
DATA_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = "example-only-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
USE_TZ = True

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "eventtracking.django",
    "shop",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "eventtracking.django.middleware.TrackMiddleware",
]
ROOT_URLCONF = "exampleproject.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",  # {{ user }} in the page
            ]
        },
    }
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DATA_DIR / "db.sqlite3",
        "ATOMIC_REQUESTS": True,  # a failed request rolls back, and its on-commit events go too
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
STATIC_URL = "/static/"
WSGI_APPLICATION = "exampleproject.wsgi.application"

# -- eventtracking ---------------------------------------------------------------------

EVENT_TRACKING_ENABLED = True
EVENT_TRACKING_BACKENDS = {
    # Open edX's tree, unchanged: JSON lines to the Python logger "tracking".
    "tracking_logs": {
        "ENGINE": "eventtracking.backends.routing.RoutingBackend",
        "OPTIONS": {
            "backends": {
                "local": {
                    "ENGINE": "eventtracking.backends.logger.LoggerBackend",
                    "OPTIONS": {"name": "tracking", "max_event_size": 50000},
                }
            },
            "processors": [],
        },
    },
    # The embedded store the management commands read.
    "store": {
        "ENGINE": "eventtracking.backends.sqlite.SQLiteBackend",
        "OPTIONS": {"path": str(DATA_DIR / "events.db")},
        # Written in batches by the emitting thread (the default for this store);
        # a partial batch waits at most half a second.
        "DELIVERY": {"mode": "inline", "max_delay": 0.5},
    },
}
if os.environ.get("SEGMENT_WRITE_KEY"):
    # Open edX's segmentio branch: only whitelisted events go to Segment.
    EVENT_TRACKING_BACKENDS["segmentio"] = {
        "ENGINE": "eventtracking.backends.routing.RoutingBackend",
        "OPTIONS": {
            "backends": {
                "segment": {"ENGINE": "eventtracking.backends.segment_http.SegmentHTTPBackend"}
            },
            "processors": [
                {
                    "ENGINE": "eventtracking.processors.whitelist.NameWhitelistProcessor",
                    "OPTIONS": {"whitelist": ["shop.order.placed"]},
                }
            ],
        },
    }
EVENT_TRACKING_PROCESSORS = [{"ENGINE": "eventtracking.processors.redact.Redactor"}]
EVENT_TRACKING_VALIDATION = "warn"
# Opt-ins beyond Open edX's behaviour: event ids and documentation versions on every
# event, and each app's events.py imported at start-up (shop/events.py documents types).
EVENT_TRACKING_ENVELOPE = "full"
EVENT_TRACKING_AUTODISCOVER = True
EVENT_TRACKING_ON_COMMIT = ["shop.order.*"]
EVENT_TRACKING_REQUEST_EVENT = "server.request"
TRACKING_IGNORE_URL_PATTERNS = [r"^/static/", r"^/favicon"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {
        "tracking_file": {
            "class": "logging.FileHandler",
            "filename": str(DATA_DIR / "tracking.log"),
            "formatter": "message",
        }
    },
    "formatters": {"message": {"format": "%(message)s"}},
    "loggers": {"tracking": {"handlers": ["tracking_file"], "level": "INFO", "propagate": False}},
}
