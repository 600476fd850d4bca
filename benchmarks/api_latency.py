"""Latency of the HTTP API against a running `assetdb serve` (warm model).

Usage:
  assetdb serve --port 8765 &
  python benchmarks/api_latency.py --base http://127.0.0.1:8765 --image some.jpg -n 30

Prints median and p95 milliseconds per endpoint. The first thumbnail request of an
asset makes the thumbnail; later ones are served from the disk cache.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import urllib.request
import uuid
from pathlib import Path


def timed(request: urllib.request.Request | str) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        response.read()
    return (time.perf_counter() - start) * 1000


def multipart(url: str, path: Path) -> urllib.request.Request:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"{path.name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            ).encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    return urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}"})


def report(name: str, samples: list[float]) -> None:
    samples = sorted(samples)
    p95 = samples[min(len(samples) - 1, int(len(samples) * 0.95))]
    print(f"{name:<34} median {statistics.median(samples):7.1f} ms   p95 {p95:7.1f} ms"
          f"   (n={len(samples)})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="http://127.0.0.1:8000")
    ap.add_argument("--image", type=Path, required=True, help="an image to search with")
    ap.add_argument("-n", type=int, default=30)
    args = ap.parse_args()
    base = args.base.rstrip("/")
    with urllib.request.urlopen(f"{base}/api/info") as r:
        print("model:", json.load(r)["model"])
    with urllib.request.urlopen(f"{base}/api/assets?limit=100") as r:
        ids = [h["id"] for h in json.load(r)["results"]]
    words = ["red car", "a dog on a beach", "blue poster", "green field at dawn"]
    report("GET /api/search (text, 24)", [
        timed(f"{base}/api/search?q={words[i % 4].replace(' ', '+')}&limit=24")
        for i in range(args.n)])
    report("GET /api/search + filter", [
        timed(f"{base}/api/search?q=red+car&kind=image&captured_after=2000-01-01")
        for _ in range(args.n)])
    report("POST /api/search/image", [
        timed(multipart(f"{base}/api/search/image?limit=24", args.image)) for _ in range(args.n)])
    report("GET /api/assets/{id}/similar", [
        timed(f"{base}/api/assets/{ids[i % len(ids)]}/similar") for i in range(args.n)])
    report("GET /api/assets/{id}", [timed(f"{base}/api/assets/{ids[i % len(ids)]}")
                                    for i in range(args.n)])
    first = [timed(f"{base}/api/assets/{i}/thumbnail?size=512") for i in ids[: args.n]]
    report("thumbnail, first request (makes it)", first)
    report("thumbnail, cached", [timed(f"{base}/api/assets/{ids[i % len(ids)]}/thumbnail?size=512")
                                 for i in range(args.n)])


if __name__ == "__main__":
    main()
