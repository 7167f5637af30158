"""The one `env` object every settings module reads (https://12factor.net/config), and the folders.

Values come from the process environment, then from an optional `.env` at the project root.
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(environ.Env().str("TASKHUB_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()
# https://django-environ.readthedocs.io/en/latest/quickstart.html (values set in the real
# environment win over the file).
if (BASE_DIR / ".env").is_file():
    env.read_env(BASE_DIR / ".env", overwrite=False)
