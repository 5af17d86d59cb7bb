"""`promptkit import-images` on a folder of N small AUTOMATIC1111 PNGs (32 px, a `parameters` chunk each,
every prompt and seed different): images per second and the importing process's peak memory. The
anchor is `--dry-run` on the same folder (reading every file's metadata, writing nothing), so the
ratio is what storing costs (the files written and fsynced, a prompt and a generation row each).
A second run over the same folder (every image a duplicate) is timed too. Each run is a new process.

    python benchmarks/import_folder.py [--n 10000] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TEXT = ("a lighthouse on a cliff number {i}, stormy sea, dramatic light\nNegative prompt: blurry, lowres\n"
        "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: {i}, Size: 512x768, "
        "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Version: v1.10.1")


def write_folder(folder: Path, n: int) -> int:
    """N PNGs in A1111's layout (Pillow's PngInfo `parameters` tEXt, as A1111's images.py writes it); bytes written."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    total = 0
    for i in range(n):
        info = PngInfo()
        info.add_text("parameters", TEXT.format(i=i))
        buffer = io.BytesIO()
        Image.new("RGB", (32, 32), (i % 256, (i // 256) % 256, 90)).save(buffer, format="PNG", pnginfo=info)
        sub = folder / f"{i // 1000:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"{i:06d}.png").write_bytes(buffer.getvalue())
        total += len(buffer.getvalue())
    return total


def timed_import(folder: Path, db: Path, *flags: str) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one `promptkit import-images` process."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    script = ("import resource, sys; from promptkit.cli import main\n"
              "try:\n    main(sys.argv[1:], standalone_mode=False)\n"
              "finally:\n    print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script, "--db", str(db), "import-images", str(folder), "--quiet",
                           "--json", *flags], capture_output=True, text=True, env=env, check=True)
    wall = time.perf_counter() - started
    peak_kb = int(done.stderr.rsplit("PEAK", 1)[1].split()[0])
    return wall, peak_kb / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10_000, help="images in the folder (default 10,000)")
    parser.add_argument("--quick", action="store_true", help="500 images")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    n = 500 if args.quick else args.n
    from benchmarks.figures import Figure, figures_json, format_table

    with tempfile.TemporaryDirectory(prefix="pk-import-") as home:
        folder, db = Path(home) / "outputs", Path(home) / "library.db"
        size = write_folder(folder, n)
        dry_s, _ = timed_import(folder, db, "--dry-run")
        wall, peak = timed_import(folder, db)
        again_s, _ = timed_import(folder, db)
        baseline = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    rate, dry_rate = n / wall, n / dry_s
    figures = [
        Figure("import-images: images per second", rate, "img/s", anchor=dry_rate, ratio=rate / dry_rate,
               note=f"{n:,} PNGs of 32 px ({size / n:.0f} bytes each) in {wall:.1f} s, process start included; "
                    "anchor: --dry-run (metadata read, nothing written)"),
        Figure("import-images: peak memory (RSS)", peak, "MB",
               note=f"the importing process's ru_maxrss; largest of the three runs {baseline:.0f} MB"),
        Figure("second run (all duplicates): images per second", n / again_s, "img/s",
               note="re-running the folder adds nothing; each file is read and hashed"),
    ]
    title = f"import folder: {n:,} AUTOMATIC1111 PNGs"
    print(figures_json(figures, benchmark="import folder", title=title) if args.json else format_table(figures, title))


if __name__ == "__main__":
    main()
