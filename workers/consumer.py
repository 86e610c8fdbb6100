"""The worker's consumer: Celery's own, with one repair for a broker connection that is lost.

Celery 5.7 with the Redis transport (kombu 5.7): when the broker connection drops while the
worker holds an unacknowledged message (a task running, since every medvault task acknowledges
late, or one waiting for its countdown), the consumer first ``collect``s the broken connection,
which drops the transport's client but keeps the connection's default channel, and then closes
the connection. Closing that channel again restores the unacknowledged messages through the
dropped client: AttributeError, which Celery takes for an unrecoverable error, and the worker
process exits instead of reconnecting (found by tests/faults; tests/workers/test_broker_faults.py).

This consumer closes the default channel itself, while the transport is still whole, and then
forgets it, so Celery's own clean-up has nothing left to close twice. What the close could not
give back to a broker that is down stays in the broker's unacknowledged set, from where the
Redis transport restores it after its visibility timeout (every task is idempotent).
"""

from __future__ import annotations

from contextlib import suppress

from celery.worker.consumer import Consumer as CeleryConsumer


class Consumer(CeleryConsumer):
    def on_connection_error_after_connected(self, exc: Exception) -> None:
        connection = self.connection
        channel = getattr(connection, "_default_channel", None)
        if channel is not None:
            broken = (*connection.connection_errors, *connection.channel_errors, OSError)
            with suppress(*broken):
                channel.close()
            connection._default_channel = None
        super().on_connection_error_after_connected(exc)
