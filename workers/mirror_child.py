"""The transaction process of a plain backfill (``crm_qb.sync.pipeline.mirrorproc``): ``python -m
workers.mirror_child``, started by the backfill's own process with the app's settings and the walk's task on the
first line of its stdin (pickled, base64). It builds the app for those settings and runs
``backfill.serve_transactions`` with its stdin and stdout as the pipes to its parent; its log goes to stderr, as
its parent's does.
"""

from __future__ import annotations

import base64
import pickle
import sys

from crm_qb.app import create_app
from crm_qb.gcpolicy import bulk_collection
from crm_qb.logs import setup_logging
from crm_qb.runtime import runtime
from crm_qb.sync.pipeline.backfill import serve_transactions
from workers.queues import bulk_services, end_bulk_work


def main() -> None:
    """Read the payload, then walk and mirror the transactions for the parent."""
    settings, task = pickle.loads(base64.b64decode(sys.stdin.readline()))  # our parent wrote it
    setup_logging(task.log_level, settings.secrets())
    app = create_app(settings)
    with app.app_context():
        rt = runtime(app)
        # the parent gives way to live work: so do its pages here
        services = bulk_services(rt) if task.paced else rt.sync_services()
        try:
            with bulk_collection():  # the walk allocates a page of objects after another (gcpolicy)
                serve_transactions(services, task, sys.stdin, sys.stdout)
        finally:
            end_bulk_work(rt.redis, rt.keys)  # its part of the host's bulk share goes back to its parent at once


if __name__ == "__main__":
    main()
