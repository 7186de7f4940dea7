#!/usr/bin/env python3
"""GET one URL at a fixed rate until a file appears; print each latency (ms), one per line.

    python3 benches/get_probe.py URL RATE STOP_FILE > latencies

The requests are scheduled at a fixed rate, as an operator console would send them, not in
a closed loop: a closed loop (wrk) sends as fast as the server answers and so becomes the
load it measures. A latency is counted from the request's scheduled start, not from when a
worker got to it, so a stall of the server shows in full rather than as one slow request
(no coordinated omission). Requests go over keep-alive connections, several in flight.
A failed request (no answer, or not 200) prints `error`.
"""

import http.client
import os
import queue
import sys
import threading
import time
from urllib.parse import urlsplit

WORKERS = 16


def main() -> None:
    url, rate, stop_file = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    parts = urlsplit(url)
    path = parts.path or "/"
    scheduled: queue.Queue = queue.Queue()
    out = sys.stdout
    out_lock = threading.Lock()

    def worker() -> None:
        conn = None
        while True:
            start = scheduled.get()
            if start is None:
                return
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                line = f"{(time.monotonic() - start) * 1e3:.3f}" if response.status == 200 else "error"
            except (OSError, http.client.HTTPException):
                line = "error"
                conn = None
            with out_lock:
                out.write(line + "\n")

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    began = time.monotonic()
    n = 0
    while not os.path.exists(stop_file):
        at = began + n / rate
        delay = at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        scheduled.put(at)
        n += 1
    for _ in threads:
        scheduled.put(None)
    for thread in threads:
        thread.join()
    out.flush()


if __name__ == "__main__":
    main()
