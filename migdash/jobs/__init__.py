"""Requests, queue and worker: how an action becomes a job that runs at most once.

Layering: ``jobs`` imports ``engine`` and ``store``, never ``web``.  The job
row in the metadata DB is the source of truth; the queue (Huey, on a SQLite
file by default or on Redis) only carries "run job N".
"""
