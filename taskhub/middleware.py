"""One crossing to a thread per request under ASGI, not one per middleware hook.

Under ASGI, Django runs a middleware that can be asynchronous (every ``MiddlewareMixin`` one)
asynchronously whenever the handler below it is asynchronous, and such a middleware then calls
each of its ``process_request`` / ``process_response`` hooks in a worker thread: a dozen
crossings between the event loop and threads for every request to a synchronous view (DRF, the
admin). A synchronous-only middleware at the end of the list makes Django build the whole chain
synchronously, entered once from the event loop; async views (the live streams) still run on the
event loop. https://docs.djangoproject.com/en/5.2/topics/http/middleware/#asynchronous-support
"""


class SynchronousChainMiddleware:
    """Last in MIDDLEWARE: passes every request on unchanged (see the module docstring)."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)
