"""The test project as a real server runs it: ``wsgi`` (gunicorn, runserver) and ``asgi`` (uvicorn).

Configured from `django_settings` with an SQLite file named by
``EVENTTRACKING_SERVER_DB`` (migrated on import), so that sessions and users
work across the server's threads. `test_django_servers` starts the servers.
"""

from __future__ import annotations

import os
import sys

import django
from django.conf import settings

import django_settings

if not settings.configured:
    overrides = {
        "DATABASES": {
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": os.environ["EVENTTRACKING_SERVER_DB"],
            }
        },
        "ALLOWED_HOSTS": ["127.0.0.1"],
    }
    values = {
        name: getattr(django_settings, name) for name in dir(django_settings) if name.isupper()
    }
    settings.configure(**{**values, **overrides})
    django.setup()

from django.core.asgi import get_asgi_application
from django.core.management import call_command
from django.core.wsgi import get_wsgi_application

call_command("migrate", verbosity=0)
wsgi = get_wsgi_application()
asgi = get_asgi_application()

if __name__ == "__main__":  # Django's development server: python django_server_app.py PORT
    call_command("runserver", f"127.0.0.1:{sys.argv[1]}", use_reloader=False)
