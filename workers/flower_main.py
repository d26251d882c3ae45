"""``python -m workers.flower_main ARGS``: the ``celery ARGS`` command line with the
farm's process-log format set up first (``process_logs.log_everything``).

Flower sets up no logging through Celery's signals: tornado would put its own
formatter on the root logger, and Flower's, tornado's and Celery's lines would
not be logfmt.
"""

from __future__ import annotations

from celery.__main__ import main

from workers.process_logs import log_everything

if __name__ == "__main__":
    log_everything()
    main()
