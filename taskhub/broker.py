"""kombu's Redis transport, with one Redis client per channel instead of one per command.

kombu's Redis channel builds a new ``redis.Redis`` around its connection pool for each command it
sends outside its consumer's own client (``conn_or_acquire``): two per job in a worker's consumer
(the delivered message recorded as unacknowledged, then its acknowledgement). redis-py 8 copies its
~170 response callbacks into every new client: 58 us of CPU each, a tenth of a consumer's CPU per
job (bench/README.md, ``throughput.py``). A client holds no connection of its own (it takes one
from the pool per command), so the channel keeps one and makes it again only with a new pool (after
a reconnect). Registered for the ``redis://`` scheme by taskhub/celery.py (``rediss://`` keeps kombu's); nothing
else differs from kombu's transport.
"""

from __future__ import annotations

from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    _sync_client = None

    def _create_client(self, asynchronous=False):
        if asynchronous:
            return super()._create_client(asynchronous=True)
        client = self._sync_client
        if client is None or client.connection_pool is not self.pool:
            client = self._sync_client = super()._create_client()
        return client


class Transport(kombu_redis.Transport):
    Channel = Channel
