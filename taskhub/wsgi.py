import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "taskhub.settings")

application = get_wsgi_application()

from taskhub.runtime import prepare_web_process  # noqa: E402 (after Django is set up)

prepare_web_process()
