"""API latency while a training job uses both cores: does the window stay responsive?

    python bench/bench_api_latency.py [--requests N]

Starts the real app (`cllm serve`) on a temporary data root, measures the latency of
the calls the window makes while idle, then again while a training job runs in its
own process, and prints p50 / p99 / max of each.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import requests

CALLS = ["/api/models", "/api/jobs?active=1", "/api/settings"]


def measure(origin: str, token: str, n: int) -> np.ndarray:
    s = requests.Session()
    s.headers["X-CLLM-Token"] = token
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        s.get(origin + CALLS[i % len(CALLS)], timeout=30).raise_for_status()
        out.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.005)
    return np.array(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=600)
    args = ap.parse_args()
    home = tempfile.mkdtemp(prefix="cllm-bench-")
    env = {**os.environ, "CLLM_HOME": home}
    server = subprocess.Popen([sys.executable, "-m", "cllm_app", "serve"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        url = server.stdout.readline().split()[-1]
        origin, token = url.split("/#token=")
        h = {"X-CLLM-Token": token}
        requests.post(origin + "/api/models", json={"model_name": "b", "n_layer": 6, "n_head": 6, "n_embd": 384,
                                                     "block_size": 256}, headers=h, timeout=60).raise_for_status()
        text = ("All work and no play makes Jack a dull boy. " * 20000).encode()
        files = {"files": ("text.txt", text)}
        requests.post(origin + "/api/models/b/queue/upload", files=files, headers=h, timeout=60).raise_for_status()
        idle = measure(origin, token, args.requests)
        r = requests.post(origin + "/api/models/b/train", json={"batch_size": 8, "sequence_length": 256,
                                                               "target_epochs": 100}, headers=h, timeout=60)
        r.raise_for_status()
        job = r.json()["id"]
        while requests.get(origin + f"/api/jobs/{job}", headers=h, timeout=30).json()["detail"].get("step", 0) < 1:
            time.sleep(0.5)
        busy = measure(origin, token, args.requests)
        requests.post(origin + f"/api/jobs/{job}/stop", headers=h, timeout=30)
    finally:
        time.sleep(2)
        server.terminate()
        server.wait(timeout=30)
    print(f"{'':<22}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for name, xs in (("idle", idle), ("while training (B)", busy)):
        print(f"{name:<22}{np.percentile(xs, 50):>9.1f}{np.percentile(xs, 99):>9.1f}{xs.max():>9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
