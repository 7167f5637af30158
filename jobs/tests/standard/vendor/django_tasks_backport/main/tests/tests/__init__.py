# Copied unchanged from django-tasks (https://github.com/RealOrangeOne/django-tasks), tests/tests/__init__.py at commit
# e8520fe85de92814af71a3ba40ac402c72804a02 (main after 0.12.0: the exceptions' names synced with Django 6's).
# Copyright (c) Jake Howard and individual contributors; BSD 3-Clause licence:
# jobs/tests/standard/vendor/django_tasks_backport/LICENSE.
