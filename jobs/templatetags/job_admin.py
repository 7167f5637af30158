"""Template filters of the job admin's pages: ``{{ value|when }}`` shows a time as every other
place of the admin does (``jobs.admin.rendering.when_html``)."""

from django import template

from jobs.admin.rendering import when_html

register = template.Library()


@register.filter
def when(value):
    """A datetime as local time with seconds, the zone named, ISO on hover; "-" for none."""
    return when_html(value)
