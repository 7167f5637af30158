import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "taskhub.settings")

application = get_wsgi_application()

from taskhub.runtime import freeze_loaded_objects, load_web_code  # noqa: E402 (after Django is set up)

load_web_code()
freeze_loaded_objects()
