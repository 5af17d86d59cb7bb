"""Crash safety: `promptkit ab run` killed (SIGKILL) at 20 random moments, then resumed to completion."""

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from promptkit.experiments import VariantSpec, create_experiment
from promptkit.doctor import diagnose, fix_library
from promptkit.library import Library
from promptkit.params import GenerationParams
from promptkit.templates import Fields, PromptBuilder

KILLS = 20
SEEDS = 300  # x 2 variants = 600 cells: more than 20 short-lived runs can finish
DAMAGE = {"integrity", "foreign_keys", "missing_file", "sha256_mismatch", "schema"}


def _count(db) -> int:
    with Library(db) as lib:
        return lib.db.execute("SELECT count(*) FROM generations").fetchone()[0]


def _assert_consistent(db):
    report = diagnose(db)
    damage = [f for f in report.findings if f.check in DAMAGE and f.problem]
    assert not damage, damage
    with Library(db) as lib:
        duplicates = lib.db.execute("SELECT variant, seed, count(*) FROM generations GROUP BY variant, seed "
                                    "HAVING count(*) > 1").fetchall()
    assert duplicates == []  # resuming never makes a second image for a cell
    return report


@pytest.fixture
def crash_experiment(isolated_library, tiny_model):
    with Library(isolated_library) as lib:
        builder = PromptBuilder()
        for label, style in (("A", "watercolor"), ("B", "sketch")):
            lib.save_prompt(builder.render(Fields(subject="a lighthouse", style=[style])), name=label)
        create_experiment(lib, "crash", [VariantSpec("A", "A"), VariantSpec("B", "B")], list(range(SEEDS)),
                          GenerationParams(steps=2, sampler="Euler"), model=tiny_model)
    return isolated_library


def _start(db):
    env = dict(os.environ, PROMPTKIT_DB=str(db))
    return subprocess.Popen([sys.executable, "-m", "promptkit", "ab", "run", "crash", "--quiet", "--no-engine",
                             "--batch-size", "2"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            cwd=db.parent)


def test_sigkill_at_random_moments_then_resume(crash_experiment):
    db = crash_experiment
    rng = random.Random(20261125)
    landed = 0
    for _ in range(KILLS):
        before = _count(db)
        proc = _start(db)
        deadline = time.time() + 120
        # Wait until this run has written something, then kill it a random moment later:
        # mid-denoise, mid-PNG-write or mid-commit, wherever it happens to be.
        while proc.poll() is None and _count(db) == before and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.1))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            landed += 1
        proc.wait()
        assert proc.returncode in (0, -signal.SIGKILL), proc.stderr.read().decode()
        _assert_consistent(db)
    assert landed == KILLS, f"only {landed} of {KILLS} kills landed before the run finished"
    done = _count(db)
    assert 0 < done < 2 * SEEDS
    proc = _start(db)
    assert proc.wait(timeout=900) == 0, proc.stderr.read().decode()
    _assert_consistent(db)
    with Library(db) as lib:
        cells = lib.db.execute("SELECT count(DISTINCT variant || ':' || seed), count(*) FROM generations").fetchone()
    assert cells == (2 * SEEDS, 2 * SEEDS)  # exactly one image per (variant, seed)
    fixed = fix_library(db, min_age_seconds=0)
    assert diagnose(db).ok, fixed


def test_ctrl_c_stops_after_the_current_batch(crash_experiment):
    db = crash_experiment
    proc = _start(db)
    deadline = time.time() + 120
    while proc.poll() is None and _count(db) == 0 and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    assert "interrupted" in proc.stderr.read().decode()
    report = _assert_consistent(db)
    assert report.ok  # a clean stop leaves no orphan or temp files either
    assert 0 < _count(db) < 2 * SEEDS
