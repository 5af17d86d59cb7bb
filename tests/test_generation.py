"""Generation with the tiny random-weight pipeline on CPU."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from promptkit.generation import GenerationJob, reproduce, run_job
from promptkit.library import Library
from promptkit.params import GenerationParams
from promptkit.pnginfo import parse_a1111_parameters, read_png_text

FAST = GenerationParams(steps=3, cfg=5.0, sampler="Euler")


def _generate(db, engine, prompt, seeds, batch_size=1, params=FAST):
    with Library(db) as lib:
        return run_job(lib, engine, GenerationJob(prompt=prompt, params=params, seeds=seeds,
                                                  batch_size=batch_size)).generations


def test_same_seed_twice_gives_identical_png_bytes(isolated_library, tiny_engine, saved_prompt):
    first = _generate(isolated_library, tiny_engine, saved_prompt, [42])
    second = _generate(isolated_library, tiny_engine, saved_prompt, [42])
    assert first[0]["image_sha256"] == second[0]["image_sha256"]
    with open(first[0]["image_path"], "rb") as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == first[0]["image_sha256"]
    other = _generate(isolated_library, tiny_engine, saved_prompt, [43])
    assert other[0]["image_sha256"] != first[0]["image_sha256"]


def test_seed_alone_equals_seed_inside_a_batch_as_pixels(isolated_library, tiny_engine, saved_prompt):
    alone = _generate(isolated_library, tiny_engine, saved_prompt, [7])[0]
    batch = _generate(isolated_library, tiny_engine, saved_prompt, [5, 6, 7, 8], batch_size=4)
    in_batch = next(g for g in batch if g["seed"] == 7)
    a = np.asarray(Image.open(alone["image_path"]).convert("RGB"), dtype=np.int16)
    b = np.asarray(Image.open(in_batch["image_path"]).convert("RGB"), dtype=np.int16)
    assert a.shape == b.shape
    assert np.abs(a - b).max() <= 1  # batched float maths may move a value by 1/255
    # a different seed in the same batch is a different picture
    c = np.asarray(Image.open(next(g for g in batch if g["seed"] == 5)["image_path"]).convert("RGB"), dtype=np.int16)
    assert np.abs(a - c).max() > 10


def test_same_batch_twice_is_byte_identical(isolated_library, tiny_engine, saved_prompt):
    one = _generate(isolated_library, tiny_engine, saved_prompt, [1, 2, 3], batch_size=3)
    two = _generate(isolated_library, tiny_engine, saved_prompt, [1, 2, 3], batch_size=3)
    assert [g["image_sha256"] for g in one] == [g["image_sha256"] for g in two]


def test_png_parameters_chunk_parses_back_to_stored_values(isolated_library, tiny_engine, saved_prompt):
    gen = _generate(isolated_library, tiny_engine, saved_prompt, [11])[0]
    text = read_png_text(gen["image_path"])
    parsed = parse_a1111_parameters(text["parameters"])
    with Library(isolated_library) as lib:
        row = lib.get_generation(gen["id"])
    assert parsed["positive"] == saved_prompt["positive"]
    assert parsed["negative"] == saved_prompt["negative"]
    assert parsed["seed"] == row["seed"] == 11
    assert parsed["steps"] == row["steps"] == 3
    assert parsed["cfg"] == row["cfg"] == 5.0
    assert parsed["sampler"] == row["sampler"] == "Euler"
    assert (parsed["width"], parsed["height"]) == (row["width"], row["height"]) == (64, 64)
    assert parsed["settings"]["Model hash"] == row["model_hash"]
    meta = json.loads(text["promptkit"])
    assert meta["batch"] == {"size": 1, "index": 0, "seeds": [11]}
    assert meta["template_digest"] == saved_prompt["template_digest"]


def test_reproduce_matches_batch_member(isolated_library, tiny_engine, saved_prompt):
    batch = _generate(isolated_library, tiny_engine, saved_prompt, [3, 4, 5], batch_size=3)
    with Library(isolated_library) as lib:
        result = reproduce(lib, tiny_engine, batch[1]["id"])
    assert result["match"], result
    assert result["new_sha256"] == batch[1]["image_sha256"]


def test_reproduce_of_an_older_png_says_the_pixels_match(isolated_library, tiny_engine, saved_prompt):
    """An image written before PNGs stopped carrying local paths: other bytes, the same pixels, said so."""
    from io import BytesIO

    from PIL import PngImagePlugin

    made = _generate(isolated_library, tiny_engine, saved_prompt, [7])[0]
    with Library(isolated_library) as lib:
        with Image.open(made["image_path"]) as image:
            info = PngImagePlugin.PngInfo()
            info.add_text("parameters", "a lighthouse\nSteps: 3, Model: /home/someone/models/tiny-sd")
            buffer = BytesIO()
            image.save(buffer, format="PNG", pnginfo=info)
        sha, file = lib.store_image(buffer.getvalue())
        lib.db["generations"].update(made["id"], {"image_sha256": sha, "image_path": lib.relative_image_path(file)})
        result = reproduce(lib, tiny_engine, made["id"])
    assert not result["match"] and result["pixels_match"], result
    assert any("pixels are identical" in note for note in result["notes"])
    assert result["new_sha256"] == made["image_sha256"]


def test_failure_mid_batch_leaves_no_row_without_its_file(isolated_library, tiny_engine, saved_prompt, monkeypatch):
    calls = {"n": 0}
    original = Library.store_image

    def failing_store(self, png):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full (simulated)")
        return original(self, png)

    monkeypatch.setattr(Library, "store_image", failing_store)
    with pytest.raises(Exception, match="disk full"):
        _generate(isolated_library, tiny_engine, saved_prompt, [1, 2, 3, 4], batch_size=4)
    with Library(isolated_library) as lib:
        rows = list(lib.db.query("SELECT * FROM generations"))
        assert len(rows) == 2
        for row in rows:
            data = (lib.path.parent / row["image_path"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == row["image_sha256"]


def test_sigkill_mid_run_leaves_no_row_without_its_file(isolated_library, tiny_model, saved_prompt, tmp_path):
    env = dict(os.environ, PROMPTKIT_DB=str(isolated_library))
    cmd = [sys.executable, "-m", "promptkit", "generate", "lighthouse", "--model", tiny_model,
           "--seeds", "1-400", "--steps", "2", "--batch-size", "2", "--quiet"]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    with Library(isolated_library) as lib:
        while time.time() < deadline and proc.poll() is None:
            count = lib.db.execute("SELECT count(*) FROM generations").fetchone()[0]
            if count >= 5:
                break
            time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with Library(isolated_library) as lib:
        rows = list(lib.db.query("SELECT * FROM generations"))
        assert 5 <= len(rows) < 400
        for row in rows:
            data = (lib.path.parent / row["image_path"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == row["image_sha256"]
        assert lib.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


class FakeOutOfMemoryError(RuntimeError):
    """Stands in for torch.cuda.OutOfMemoryError (the message is what the engine checks on CPU)."""


def test_out_of_memory_retries_in_halves_with_same_seeds(isolated_library, tiny_engine, saved_prompt, monkeypatch):
    original = type(tiny_engine).run_batch
    sizes = []

    def oom_above_one(self, positive, negative, seeds, params, profile=False, inputs=None):
        sizes.append(len(seeds))
        if len(seeds) > 1:
            raise FakeOutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(self, positive, negative, seeds, params, profile=profile, inputs=inputs)

    reference = _generate(isolated_library, tiny_engine, saved_prompt, [1, 2, 3, 4], batch_size=1)
    monkeypatch.setattr(type(tiny_engine), "run_batch", oom_above_one)
    with Library(isolated_library) as lib:
        outcome = run_job(lib, tiny_engine, GenerationJob(prompt=saved_prompt, params=FAST, seeds=[1, 2, 3, 4],
                                                          batch_size=4))
    assert sizes == [4, 2, 1, 1, 2, 1, 1]
    assert [g["seed"] for g in outcome.generations] == [1, 2, 3, 4]
    # at batch size 1 the images are exactly those of an ordinary batch-1 run
    assert [g["image_sha256"] for g in outcome.generations] == [g["image_sha256"] for g in reference]
    assert any("out of GPU memory at batch size 4" in n for n in outcome.notes)


def test_out_of_memory_at_batch_one_gives_a_hint(isolated_library, tiny_engine, saved_prompt, monkeypatch):
    def always_oom(self, *args, **kwargs):
        raise FakeOutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(type(tiny_engine), "run_batch", always_oom)
    from promptkit.generation import OutOfMemory

    with pytest.raises(OutOfMemory, match="--cpu-offload"):
        _generate(isolated_library, tiny_engine, saved_prompt, [1, 2], batch_size=2)
    with Library(isolated_library) as lib:
        assert lib.db["generations"].count == 0


def test_black_image_is_flagged(isolated_library, tiny_engine, saved_prompt, monkeypatch):
    original = type(tiny_engine).run_batch

    def black(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        result.images = [Image.new("RGB", im.size) for im in result.images]
        return result

    monkeypatch.setattr(type(tiny_engine), "run_batch", black)
    with Library(isolated_library) as lib:
        outcome = run_job(lib, tiny_engine, GenerationJob(prompt=saved_prompt, params=FAST, seeds=[1]))
        row = lib.get_generation(outcome.generations[0]["id"])
    assert "fp16 VAE overflow" in row["params"]["flags"][0]
    assert any("all-black" in n for n in outcome.notes)


def test_profile_reports_each_stage(isolated_library, tiny_engine, saved_prompt):
    with Library(isolated_library) as lib:
        outcome = run_job(lib, tiny_engine, GenerationJob(prompt=saved_prompt, params=FAST, seeds=[1, 2],
                                                          batch_size=2), profile=True)
    for stage in ("text_encoding", "denoising", "vae_decode", "png_encode", "database"):
        assert outcome.timings[stage] >= 0
    assert outcome.timings["denoising"] > 0


def test_automatic_batch_size_on_cpu_is_recorded(isolated_library, tiny_engine, saved_prompt):
    from promptkit.params import parse_batch_size

    assert parse_batch_size("auto") is None and parse_batch_size("3") == 3
    with pytest.raises(Exception, match="whole number or 'auto'"):
        parse_batch_size("lots")
    with Library(isolated_library) as lib:
        outcome = run_job(lib, tiny_engine, GenerationJob(prompt=saved_prompt, params=FAST, seeds=[1, 2, 3, 4, 5, 6],
                                                          batch_size=None))
        sizes = [lib.get_generation(g["id"])["batch"]["size"] for g in outcome.generations]
    assert sizes == [4, 4, 4, 4, 2, 2]  # CPU: batches of up to 4, each image recording its real batch
