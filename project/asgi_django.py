"""The Django face alone: ``daphne project.asgi_django:application`` (settings_django)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings_django")
application = get_asgi_application()
