"""Django's date formats for the languages taskhub runs in (FORMAT_MODULE_PATH): a time Django
renders itself (a stock admin page's read-only field or list column) reads as the admin's one time
format, ``jobs.admin.rendering.when_html``: ``2026-12-06 10:41:07 UTC``."""
