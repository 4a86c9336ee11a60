"""Django settings for the tests of eventtracking.django (configured by django_support)."""

from __future__ import annotations

SECRET_KEY = "eventtracking-tests-secret-key-not-for-production"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "eventtracking.django",
    "django_testapp",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "eventtracking.django.middleware.TrackMiddleware",
]
ROOT_URLCONF = "django_testapp.urls"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
STATIC_URL = "/static/"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGGING_CONFIG = None

EVENT_TRACKING_ENABLED = True
EVENT_TRACKING_BACKENDS = {"memory": {"ENGINE": "eventtracking.testing.InMemoryBackend"}}
EVENT_TRACKING_PROCESSORS: list[dict[str, object]] = []
# Our features under test: event ids and documentation versions, each app's events.py.
EVENT_TRACKING_ENVELOPE = "full"
EVENT_TRACKING_AUTODISCOVER = True
