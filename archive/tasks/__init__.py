"""Background work on a PostgreSQL task queue, so any node can run any job (issue 15).

The queue is procrastinate (https://procrastinate.readthedocs.io): jobs are rows in the one
PostgreSQL every node already shares, fetched with `SELECT … FOR UPDATE SKIP LOCKED`, announced
with LISTEN/NOTIFY, and each worker sends heartbeats, so the jobs of a worker that died (kill -9,
lost machine) are found and retried. Chosen over Celery/RQ/Dramatiq because those need a second
broker (Redis, RabbitMQ) to run and keep highly available; over hand-written polling because
locking, retries, periodic jobs and stalled-job detection are exactly the subtle parts. It is
maintained, typed, asyncio-native and runs on Python 3.11. Its async connector is psycopg 3
(the index uses asyncpg through SQLAlchemy): one small pool per node beside the index's pool.

- `app`: the procrastinate App of a node and the tasks registered on it;
- `jobs`: what each job does, with the node's `Core` (idempotent: a retried job ends right);
- `runner`: the supervised worker loop `archive serve` (unless `--no-jobs`) and `archive
  worker` run;
- `status`: waiting for queued jobs (a curator's mapping change answers once re-applied).

Jobs that must not be lost are queued inside the transaction of the change that needs them
(archive.index.task_queue.defer), never after its commit.
"""
