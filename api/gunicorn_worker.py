"""The API's gunicorn worker: gthread, spreading new connections over the workers.

Every worker waits on the one listening socket and the kernel wakes them all
for a new connection; the first to call ``accept`` gets it. A worker already
serving connections is as quick to wake as an idle one, so a client that
opens a few kept-alive connections at once (a launcher's connection pool)
often had them all on one worker: one process, one core, while the others
idled. A worker that holds connections therefore lets the idle ones try first.
"""

from __future__ import annotations

import time
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

#: How long a worker with connections waits before it accepts one more: long
#: enough for a woken idle worker to take it, short against a request.
ACCEPT_DEFER = 0.002


class SpreadingThreadWorker(ThreadWorker):
    def accept(self, listener: Any) -> None:
        if self.nr_conns:
            time.sleep(ACCEPT_DEFER)  # an idle worker takes it meanwhile, if there is one
        super().accept(listener)
