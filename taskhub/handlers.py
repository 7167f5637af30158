"""The ASGI handler: Django's, with each request's synchronous code on a thread that is reused.

Django's ``ASGIHandler`` enters a fresh ``ThreadSensitiveContext`` per request, so every request
to a synchronous view (DRF, the admin) starts a new thread for its synchronous code and, at the
end, another one to join it; thread-local state built on first use (Celery's result backend
object, for one) is built again every time. Here a request takes an idle single-thread executor
(or makes one) and gives it back when it is done, through asgiref's documented
``ThreadSensitiveContext(executor=…)``: the request's synchronous code runs on one thread, one
call at a time, as before. Django's connections stay per request (they live in the request's
context, not in the thread). https://github.com/django/asgiref/blob/main/asgiref/sync.py

A response that lasts (a live stream: an async view) gives its thread back early with
``release_request_thread()`` once its synchronous part (middleware, view) is done; what it still
does synchronously at the end (closing the response) gets a fresh thread, shut down when the
response is over, as under Django's handler. (asgiref keeps a context's executor in
``SyncToAsync.context_to_thread_executor``.)
"""

from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass

from asgiref.sync import SyncToAsync, ThreadSensitiveContext, sync_to_async
from django.core.handlers.asgi import ASGIHandler

# Idle threads kept for the next requests; a thread given back while this many are idle is shut down.
# The database pool's default size (DATABASE_POOL_MAX_SIZE): more requests than that in one process
# at once wait for a connection anyway.
MAX_IDLE_THREADS = 8


@dataclass
class _Lease:
    handler: "ReusedThreadASGIHandler"
    executor: ThreadPoolExecutor
    returned: bool = False

    def give_back(self) -> None:
        if not self.returned:
            self.returned = True
            self.handler._give_back(self.executor)


_lease: ContextVar[_Lease | None] = ContextVar("taskhub_request_thread", default=None)


def release_request_thread() -> None:
    """Give the current request's thread back (from async code: a stream that goes on waiting on
    the event loop). Served by ``ReusedThreadASGIHandler``, the thread goes back to it for other
    requests. Served by Django's own handler (a per-request ThreadSensitiveContext whose one-thread
    executor lives until the response ends: the test client, for one), that executor is shut down
    instead. Either way the response's ``close()`` at the very end gets a fresh thread for its
    brief sync work."""
    context = SyncToAsync.thread_sensitive_context.get(None)
    lease = _lease.get()
    if lease is None:
        executor = SyncToAsync.context_to_thread_executor.pop(context, None) if context is not None else None
        if executor is not None:
            executor.shutdown(wait=False)
        return
    if context is not None and SyncToAsync.context_to_thread_executor.get(context) is lease.executor:
        del SyncToAsync.context_to_thread_executor[context]
    lease.give_back()


def _shut_down_later_thread(context: ThreadSensitiveContext, leased: ThreadPoolExecutor) -> None:
    """The thread a request got after giving its own back (see ``release_request_thread``)."""
    later = SyncToAsync.context_to_thread_executor.get(context)
    if later is not None and later is not leased:
        later.shutdown(wait=False)


class ReusedThreadASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        super().__init__()
        self._idle: list[ThreadPoolExecutor] = []  # only touched from the event loop's thread
        self._made = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        lease = _Lease(self, self._idle.pop() if self._idle else self._new_executor())
        token = _lease.set(lease)
        try:
            async with ThreadSensitiveContext(executor=lease.executor) as context:
                try:
                    await self.handle(scope, receive, send)
                finally:
                    _shut_down_later_thread(context, lease.executor)
        finally:
            _lease.reset(token)
            lease.give_back()

    def load_middleware(self, is_async: bool = False) -> None:
        """The middleware chain built as under WSGI (synchronous, Django's synchronous
        ``_get_response`` at its end: URL resolution, the view and its rendering), entered once from
        the event loop. Built for ASGI, the chain (synchronous: ``SynchronousChainMiddleware``) came
        back to the event loop at its end to resolve the URL, then crossed to the request's thread
        again to run the view and once more to render its answer: three more round trips between
        loop and thread per request, each a thread wake-up that waits for a core on a busy machine.
        An async view (a live stream) is still awaited on the event loop (``_get_response`` calls it
        through ``async_to_sync``), and its streamed body is sent from the loop, holding no thread."""
        super().load_middleware(is_async=False)
        if is_async:
            self._middleware_chain = sync_to_async(self._middleware_chain, thread_sensitive=True)

    def _new_executor(self) -> ThreadPoolExecutor:
        self._made += 1
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"request-{self._made}")

    def _give_back(self, executor: ThreadPoolExecutor) -> None:
        if len(self._idle) < MAX_IDLE_THREADS:
            self._idle.append(executor)
        else:
            executor.shutdown(wait=False)
