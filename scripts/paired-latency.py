#!/usr/bin/env python3
"""Paired latency: alternates POSTs of two bodies to one URL (over one kept-alive connection) and
prints `p50_a p50_b p99_a p99_b median(b-a)` in milliseconds with microsecond precision: the last
is the median of each pair's difference, which drift on a shared machine moves least. Alternating
cancels drift between the two series; hey's summaries round to 0.1 ms, too coarse for
sub-millisecond differences.
  paired-latency.py URL KEY BODY_A BODY_B [REQUESTS] [WARMUP]"""
import http.client
import sys
import time
import urllib.parse


def main() -> None:
    url, key, body_a, body_b = sys.argv[1:5]
    requests = int(sys.argv[5]) if len(sys.argv) > 5 else 1000
    warmup = int(sys.argv[6]) if len(sys.argv) > 6 else 100
    target = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    series: dict[str, list[float]] = {"a": [], "b": []}
    for i in range(warmup + requests):
        for name, body in (("a", body_a), ("b", body_b)):
            start = time.perf_counter()
            conn.request("POST", target.path, body=body.encode(), headers=headers)
            response = conn.getresponse()
            response.read()
            elapsed = (time.perf_counter() - start) * 1000
            if response.status != 200:
                sys.exit(f"{name}: HTTP {response.status}")
            if i >= warmup:
                series[name].append(elapsed)

    def pct(values: list[float], p: int) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, len(ordered) * p // 100)]

    a, b = series["a"], series["b"]
    paired = [y - x for x, y in zip(a, b)]
    print(f"{pct(a, 50):.3f} {pct(b, 50):.3f} {pct(a, 99):.3f} {pct(b, 99):.3f} {pct(paired, 50):.3f}")


if __name__ == "__main__":
    main()
