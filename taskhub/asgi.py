import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "taskhub.settings")
django.setup(set_prefix=False)

from taskhub.handlers import ReusedThreadASGIHandler  # noqa: E402 (after Django is set up)
from taskhub.runtime import prepare_web_process  # noqa: E402

application = ReusedThreadASGIHandler()
prepare_web_process()
