"""The API's gunicorn worker: gthread, spreading new connections over the workers
and serving a kept-alive connection's next request on the thread that served the
last one.

Spreading: every worker waits on the one listening socket and the kernel wakes
them all for a new connection; the first to call ``accept`` gets it. A worker
already serving connections is as quick to wake as an idle one, so a client
that opens a few kept-alive connections at once (a launcher's connection pool)
often had them all on one worker: one process, one core, while the others
idled. A worker that holds connections therefore lets the idle ones try first.

Lingering: after each response gthread hands a kept-alive connection back to
the worker's main thread, which puts it in its poller, wakes when the next
request arrives and hands it to a pool thread again: two thread switches per
request for a client (or a proxy's pooled connection) that sends requests back
to back, about a tenth of the worker's CPU per read (bench/api_reads.py). The
thread that answered waits a few milliseconds for the next request itself
instead, and only while the worker has a thread for each of its connections, so
a lingering thread never keeps another connection's request waiting.
"""

from __future__ import annotations

import select
import time
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

#: How long a worker with connections waits before it accepts one more: long
#: enough for a woken idle worker to take it, short against a request.
ACCEPT_DEFER = 0.002

#: How long the thread that answered a kept-alive request waits for the next one
#: on the same connection before handing it back to the poller: longer than a
#: client takes to read an answer and send its next request, and short enough
#: that a connection gone quiet holds its thread for nothing noticeable.
LINGER_MS = 5


class SpreadingThreadWorker(ThreadWorker):
    def accept(self, listener: Any) -> None:
        if self.nr_conns:
            time.sleep(ACCEPT_DEFER)  # an idle worker takes it meanwhile, if there is one
        super().accept(listener)

    def handle(self, conn: Any) -> Any:
        """gthread's ``handle``, again for each next request on ``conn`` that arrives
        within ``LINGER_MS``; what the last one answers (keep the connection or not)
        goes back to the main thread."""
        keep = super().handle(conn)
        while keep is True and self.next_request_soon(conn):
            keep = super().handle(conn)
        return keep

    def next_request_soon(self, conn: Any) -> bool:
        """Whether this worker may linger on ``conn`` and its next request (or its
        close) arrives within ``LINGER_MS``."""
        if not self.alive or conn.is_http2 or self.nr_conns > self.cfg.threads:
            return False
        if conn.parser.unreader.buf.getvalue():  # read ahead with the last request
            return True
        poller = select.poll()
        poller.register(conn.sock, select.POLLIN)
        return bool(poller.poll(LINGER_MS))
