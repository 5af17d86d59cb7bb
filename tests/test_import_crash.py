"""import-images killed (SIGKILL) mid-run: no row without its file, `doctor` finds no damage, a re-run completes."""

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

from import_samples import A1111_TEXT, png_bytes, write
from promptkit.doctor import diagnose, fix_library
from promptkit.library import Library

FILES = 300  # more than a run can import between the first row and the kill, even on a fast machine
KILLS = 3
DAMAGE = {"integrity", "foreign_keys", "missing_file", "sha256_mismatch", "schema"}


def _count(db) -> int:
    """Rows so far, read in about a millisecond (a plain read-only connection, no migrations check), so the
    kill lands soon after the row it waited for."""
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM generations").fetchone()[0]
    except sqlite3.OperationalError:  # the schema is not there yet
        return 0
    finally:
        conn.close()


def _start(db, folder):
    env = dict(os.environ, PROMPTKIT_DB=str(db))
    return subprocess.Popen([sys.executable, "-m", "promptkit", "import-images", str(folder), "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=db.parent)


def test_sigkill_mid_import_then_doctor_clean_and_rerun_completes(isolated_library, tmp_path):
    db, folder = isolated_library, tmp_path / "outputs"
    for i in range(FILES):
        write(folder / f"{i:04d}.png", png_bytes({"parameters": A1111_TEXT.replace("Seed: 1234567890", f"Seed: {i}")},
                                                 size=(16, 16)))
    rng = random.Random(19)
    for _ in range(KILLS):
        before = _count(db)
        proc = _start(db, folder)
        deadline = time.time() + 60
        while proc.poll() is None and _count(db) == before and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.05))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode in (0, -signal.SIGKILL), proc.stderr.read().decode()
        report = diagnose(db)
        assert not [f for f in report.findings if f.check in DAMAGE and f.problem], report.findings
    assert 0 < _count(db) < FILES
    proc = _start(db, folder)
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()
    assert _count(db) == FILES
    with Library(db) as lib:
        assert lib.db.execute("SELECT count(DISTINCT image_sha256) FROM generations").fetchone()[0] == FILES
    fix_library(db, min_age_seconds=0)  # a temp file a kill left mid-write is moved aside
    assert diagnose(db).ok
