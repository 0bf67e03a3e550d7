"""The resource-limit flags of `archive serve` (issue 13): each bounds memory, time or slots
one client can take. Their ARCHIVE_* variables and TOML keys work too (archive/config.py)."""

from __future__ import annotations

import argparse

LIMIT_SETTINGS = ("dimse_max_pdu", "dimse_idle_timeout", "dimse_artim_timeout",
                  "dimse_max_associations", "max_stow_requests", "db_idle_release_seconds",
                  "max_request_parts", "http_max_header_bytes",
                  "http_body_idle_timeout", "http_header_read_timeout",
                  "dimse_max_associations_per_ae", "max_instance_bytes", "qido_max_limit")


def add_limit_flags(s: argparse.ArgumentParser) -> None:
    s.add_argument("--dimse-max-pdu", type=int, metavar="BYTES",
                   help="largest P-DATA PDU accepted; longer ones abort the association "
                        "(ARCHIVE_DIMSE_MAX_PDU, 1 MiB)")
    s.add_argument("--dimse-idle-timeout", type=float, metavar="SECONDS",
                   help="release an association silent this long (ARCHIVE_DIMSE_IDLE_TIMEOUT, 60)")
    s.add_argument("--dimse-artim-timeout", type=float, metavar="SECONDS",
                   help="drop a connection that does not finish association set-up in time "
                        "(ARCHIVE_DIMSE_ARTIM_TIMEOUT, 30)")
    s.add_argument("--dimse-max-associations", type=int, metavar="N",
                   help="concurrent associations (ARCHIVE_DIMSE_MAX_ASSOCIATIONS, 64)")
    s.add_argument("--max-stow-requests", type=int, metavar="N",
                   help="concurrent STOW-RS requests; more wait (ARCHIVE_MAX_STOW_REQUESTS, 16)")
    s.add_argument("--db-idle-release-seconds", type=float, metavar="SECONDS",
                   help="close pooled database connections idle this long, so a PostgreSQL "
                        "shutdown can complete (ARCHIVE_DB_IDLE_RELEASE_SECONDS, 10; 0: never)")
    s.add_argument("--max-request-parts", type=int, metavar="N",
                   help="parts in one STOW-RS request, 413 above (ARCHIVE_MAX_REQUEST_PARTS, 10000)")
    s.add_argument("--http-body-idle-timeout", type=float, metavar="SECONDS",
                   help="answer 408 when a STOW-RS body stalls this long "
                        "(ARCHIVE_HTTP_BODY_IDLE_TIMEOUT, 60)")
    s.add_argument("--http-max-header-bytes", type=int, metavar="BYTES",
                   help="longest HTTP request line or header field, 400/431 above "
                        "(ARCHIVE_HTTP_MAX_HEADER_BYTES, 8190)")
    s.add_argument("--http-header-read-timeout", type=float, metavar="SECONDS",
                   help="answer 408 and close a connection whose request headers are not "
                        "complete in time (ARCHIVE_HTTP_HEADER_READ_TIMEOUT, 30; 0: off)")
    s.add_argument("--max-instance-bytes", metavar="BYTES",
                   help="size limit of one instance, through any door "
                        "(ARCHIVE_MAX_INSTANCE_BYTES, 2 GiB)")
    s.add_argument("--qido-max-limit", metavar="N",
                   help="largest QIDO-RS page; a larger or missing limit is capped "
                        "(ARCHIVE_QIDO_MAX_LIMIT, 1000)")
    s.add_argument("--dimse-max-associations-per-ae", type=int, metavar="N",
                   help="concurrent associations of one calling AE title, more are rejected "
                        "(ARCHIVE_DIMSE_MAX_ASSOCIATIONS_PER_AE, 32; 0: off)")
