#!/bin/sh
# Local cluster on loopback: SeaweedFS (S3) + PostgreSQL + two archive nodes + one worker. See tools/cluster.py.
exec python3 "$(dirname "$0")/cluster.py" "$@"
