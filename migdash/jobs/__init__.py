"""Requests, approvals, the queue and the worker: how an action becomes a job that runs once.

Layering: ``jobs`` imports ``engine`` and ``store``, never ``web``.  The job
row in the metadata DB is the source of truth; the queue (Huey, on a SQLite
file by default or on Redis) only carries "run job N".

Transaction rule: library functions here add and flush, and never commit.
The boundary that called them (a web view, an API route, a CLI command)
commits once, so a request creates its job, its approval hold and its audit
row together or not at all; job ids reach the queue only after that commit
(:func:`migdash.jobs.context.enqueue_after_commit`).  The boundaries inside
this package are the worker loop (``worker.py``: claim, heartbeat and result
are separate transactions on purpose, and so is a reaper pass), the leases
it takes (``locks.py``), the worker process (``consumer.py``), its webhook
delivery pass (``delivery.py``: a delivery is claimed and its attempt recorded
in short transactions, none open while a receiver is called) and the rollout
driver it runs (``rollout_driver.py``: each member started is a transaction of
its own).  A test
fails when any other module here commits.
"""
