import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "taskhub.settings")
django.setup(set_prefix=False)

from taskhub.handlers import ReusedThreadASGIHandler  # noqa: E402 (after Django is set up)
from taskhub.runtime import freeze_loaded_objects, load_web_code  # noqa: E402

application = ReusedThreadASGIHandler()
load_web_code()
freeze_loaded_objects()
