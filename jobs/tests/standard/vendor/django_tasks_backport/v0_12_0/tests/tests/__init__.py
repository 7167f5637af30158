# Copied unchanged from django-tasks (https://github.com/RealOrangeOne/django-tasks), tests/tests/__init__.py at commit
# caaf8090ef08759243094b746d9f7260b8d9199b (0.12.0, the version requirements/base.txt installs).
# Copyright (c) Jake Howard and individual contributors; BSD 3-Clause licence:
# jobs/tests/standard/vendor/django_tasks_backport/LICENSE.
