"""Time from pressing Generate in the studio (warm engine, model preloaded as by `serve --model`)
to the first image saved, against `promptkit generate` run cold for the same job.

Both make the tiny random-weight pipeline's images on CPU: 4 seeds, the same steps, one image per
pipeline call. The studio is timed through its HTTP API, as the page drives it (POST
/api/studio/generate, then polling the job; the page polls every 250 ms, here every 10 ms so the
figure is the server's). `generate` is timed from launching the process to the first generation
row appearing in the library, and to its exit.

    python benchmarks/studio_first_image.py [--runs 5] [--steps 20]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SEEDS = [1, 2, 3, 4]


def warm_runs(folder: Path, model: str, steps: int, runs: int) -> list[tuple[float, float]]:
    from fastapi.testclient import TestClient

    from promptkit.library import Library
    from promptkit.studio import StudioEngine
    from promptkit.web import create_app
    from promptkit.worker import EngineWorker

    db = folder / "warm.db"
    Library(db).close()
    worker = EngineWorker()
    worker.preload(model, {"device": "cpu"})
    app = create_app(db, engine=StudioEngine(worker, {"device": "cpu"}), default_model=model)
    client = TestClient(app, base_url="http://127.0.0.1:8765", headers={"Sec-Fetch-Site": "same-origin"})
    timings = []
    for run in range(runs):
        body = {"fields": {"subject": f"a lighthouse, try {run}"}, "model": model, "seeds": SEEDS,
                "settings": {"steps": steps, "sampler": "Euler"}}
        started = time.perf_counter()
        job_url = client.post("/api/studio/generate", json=body).json()["status_url"]
        first = None
        while True:
            job = client.get(job_url).json()
            if job["images"] and first is None:
                first = time.perf_counter() - started
            if job["state"] in ("done", "failed"):
                assert job["state"] == "done", job
                break
            time.sleep(0.01)
        timings.append((first, time.perf_counter() - started))
    return timings


def cold_runs(folder: Path, model: str, steps: int, runs: int) -> list[tuple[float, float]]:
    timings = []
    for run in range(runs):
        db = folder / f"cold-{run}.db"
        env = {**os.environ, "PROMPTKIT_DB": str(db), "PYTHONPATH": str(ROOT)}
        cli = [sys.executable, "-m", "promptkit"]
        subprocess.run([*cli, "build", "--subject", f"a lighthouse, try {run}", "--save", "p"], env=env, check=True,
                       capture_output=True)
        started = time.perf_counter()
        process = subprocess.Popen([*cli, "generate", "p", "--model", model, "--seeds", "1-4", "--steps", str(steps),
                                    "--sampler", "Euler", "--batch-size", "1", "--device", "cpu", "--no-engine",
                                    "--quiet"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        first = None
        while process.poll() is None:
            if first is None:
                with sqlite3.connect(db, timeout=5) as conn:
                    if conn.execute("SELECT count(*) FROM generations").fetchone()[0]:
                        first = time.perf_counter() - started
            time.sleep(0.01)
        total = time.perf_counter() - started
        if process.returncode != 0:
            raise SystemExit(process.stderr.read().decode())
        timings.append((first if first is not None else total, total))
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    from promptkit.tinymodel import write_tiny_pipeline

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = str(folder / "tiny-sd")
        write_tiny_pipeline(model)
        cold = cold_runs(folder, model, args.steps, args.runs)
        warm = warm_runs(folder, model, args.steps, args.runs)
    print(f"tiny pipeline, CPU, 4 seeds, {args.steps} Euler steps, one image per call; median of {args.runs} runs\n")
    print("| path | first image (s) | all 4 images (s) |")
    print("| --- | ---: | ---: |")
    for label, runs in (("studio Generate, warm engine (serve --model)", warm),
                        ("`promptkit generate` cold (new process)", cold)):
        print(f"| {label} | {statistics.median(r[0] for r in runs):.2f} | {statistics.median(r[1] for r in runs):.2f} |")
    ratio = statistics.median(r[0] for r in cold) / statistics.median(r[0] for r in warm)
    print(f"\nfirst image: the warm studio is {ratio:.0f}x sooner")


if __name__ == "__main__":
    main()
