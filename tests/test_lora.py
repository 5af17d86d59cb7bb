"""LoRA files kept in the library (content-addressed): reproduce without the original file,
doctor, export and import; `<lora:NAME:SCALE>` tags in `ab run`."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from promptkit.cli import main
from promptkit.doctor import diagnose
from promptkit.generation import GenerationJob, reproduce, run_job
from promptkit.inputs import InputRequest, prepare_inputs
from promptkit.library import Library, file_sha256
from promptkit.params import GenerationParams

FAST = dict(steps=2, cfg=5.0, sampler="Euler", width=64, height=64)


@pytest.fixture(scope="session")
def lora_master(tmp_path_factory):
    from promptkit.tinymodel import write_tiny_pipeline

    return write_tiny_pipeline(tmp_path_factory.mktemp("lora-master") / "style.safetensors", "lora")


@pytest.fixture
def lora(tmp_path, lora_master):
    """A private copy of the tiny LoRA that a test may delete or change."""
    folder = tmp_path / "loras"
    folder.mkdir()
    return Path(shutil.copy(lora_master, folder / "style.safetensors"))


@pytest.fixture
def engine(tiny_engine):
    tiny_engine.unload_loras()  # every test loads its LoRA afresh, from wherever reproduce says
    yield tiny_engine
    tiny_engine.unload_loras()


def generate(db, engine, positive, request, seeds=(1,)):
    from promptkit.templates import Prompt, Fields

    with Library(db) as lib:
        prompt = lib.get_prompt(lib.save_prompt(Prompt(template="default", template_digest="", fields=Fields(),
                                                       positive=positive, negative="")))
        prepared = prepare_inputs(request, positive)
        engine.check_request(prepared.extra)
        extra = prepared.store(lib)
        job = GenerationJob(prompt=prompt, params=GenerationParams(**FAST, extra=extra), seeds=list(seeds))
        return run_job(lib, engine, job).generations


def stored_copies(db: Path) -> list[Path]:
    return sorted((db.with_name(f"{db.stem}-images") / "loras").rglob("*.safetensors"))


def test_lora_is_stored_once_by_sha256_and_referenced(isolated_library, engine, lora):
    sha = file_sha256(lora)
    first = generate(isolated_library, engine, "a fox", InputRequest(loras=[f"{lora}:0.8"]), seeds=(1, 2))
    generate(isolated_library, engine, "a cat", InputRequest(loras=[str(lora)]))
    assert [p.name for p in stored_copies(isolated_library)] == [f"{sha}.safetensors"]  # one copy, three images
    with Library(isolated_library) as lib:
        copy = lib.lora_file(sha)
        assert copy.read_bytes() == lora.read_bytes()
        record = lib.get_generation(first[0]["id"])["params"]["loras"][0]
    assert record["sha256"] == sha and record["stored"] is True and record["path"] == str(lora.resolve())
    assert not list(copy.parent.glob(".tmp-*"))
    assert diagnose(isolated_library).ok


def test_reproduce_uses_the_library_copy_when_the_lora_is_gone(isolated_library, engine, lora):
    gen = generate(isolated_library, engine, "a fox", InputRequest(loras=[f"{lora}:0.8"]))[0]
    lora.unlink()
    engine.unload_loras()
    with Library(isolated_library) as lib:
        result = reproduce(lib, engine, gen["id"])
    assert result["match"], result
    assert any("is gone" in note and str(lora) in note for note in result["notes"])


def test_reproduce_names_a_changed_lora_and_still_matches_from_the_copy(isolated_library, engine, lora, tmp_path):
    other = Path(shutil.copy(lora, tmp_path / "before.safetensors"))
    gen = generate(isolated_library, engine, "a fox", InputRequest(loras=[str(lora)]))[0]
    # Another LoRA's bytes now sit at the original path (another rank: other weights entirely).
    from promptkit.tinymodel import write_tiny_lora

    write_tiny_lora(tmp_path / "other.safetensors", rank=2)
    shutil.copy(tmp_path / "other.safetensors", lora)
    assert file_sha256(lora) != file_sha256(other)
    engine.unload_loras()
    with Library(isolated_library) as lib:
        result = reproduce(lib, engine, gen["id"])
    assert result["match"], result
    (note,) = [n for n in result["notes"] if "LoRA" in n]
    assert str(lora.resolve()) in note and "changed since" in note and "library's copy" in note

    # Without the library's copy (a library from before it kept them) the changed file is used: a mismatch,
    # and the message still names the file.
    with Library(isolated_library) as lib:
        lib.lora_file(file_sha256(other)).unlink()
        result = reproduce(lib, engine, gen["id"])
    assert not result["match"]
    assert any(str(lora.resolve()) in n and "changed since" in n for n in result["notes"])


def test_reproduce_command_works_from_the_library_alone(isolated_library, engine, lora, tiny_model):
    gen = generate(isolated_library, engine, "a fox <lora:style:0.7>", InputRequest(lora_dir=str(lora.parent)))[0]
    shutil.rmtree(lora.parent)
    env = {**os.environ, "PROMPTKIT_DB": str(isolated_library)}
    done = subprocess.run([sys.executable, "-m", "promptkit", "reproduce", str(gen["id"]), "--device", "cpu"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"generation {gen['id']}: match" in done.stdout
    assert "style.safetensors' is gone; used the library's copy" in done.stdout


def test_doctor_hashes_stored_loras_and_reports_orphans(isolated_library, engine, lora):
    gen = generate(isolated_library, engine, "a fox", InputRequest(loras=[str(lora)]))[0]
    sha = file_sha256(lora)
    with Library(isolated_library) as lib:
        copy = lib.lora_file(sha)
    report = diagnose(isolated_library)
    assert report.ok and str(copy) not in {f.path for f in report.findings}
    assert report.counts["files_hashed"] == 2  # the image and the LoRA file

    copy.write_bytes(copy.read_bytes()[:-1] + b"!")
    bad = [f for f in diagnose(isolated_library).findings if f.problem]
    assert [(f.check, f.path) for f in bad] == [("sha256_mismatch", str(copy))]
    assert f"LoRA file for generation {gen['id']}" in bad[0].message

    copy.unlink()
    bad = [f for f in diagnose(isolated_library).findings if f.problem]
    assert [(f.check, f.path) for f in bad] == [("missing_file", str(copy))]

    stray = copy.with_name("f" * 64 + ".safetensors")
    stray.write_bytes(b"nobody refers to this")
    assert ("orphan_file", str(stray)) in {(f.check, f.path) for f in diagnose(isolated_library).findings}


def test_export_and_import_carry_the_lora_files(isolated_library, engine, lora, tmp_path, tiny_model):
    gen = generate(isolated_library, engine, "a fox", InputRequest(loras=[f"{lora}:0.6"]))[0]
    sha = file_sha256(lora)
    export = tmp_path / "export"
    out = CliRunner().invoke(main, ["export", str(export), "--json"])
    assert out.exit_code == 0, out.output
    manifest = json.loads(out.output)
    assert manifest["format_version"] == 2 and manifest["counts"]["loras"] == 1
    assert (export / "loras" / f"{sha}.safetensors").read_bytes() == lora.read_bytes()

    # A damaged LoRA file in the export: refused, nothing imported.
    other = tmp_path / "other.db"
    damaged = export / "loras" / f"{sha}.safetensors"
    good = damaged.read_bytes()
    damaged.write_bytes(good[:-1] + b"!")
    refused = CliRunner().invoke(main, ["--db", str(other), "import", str(export)])
    assert refused.exit_code != 0 and "LoRA file content has sha256" in refused.output
    assert len(refused.output.strip().splitlines()) == 1 and not other.exists()
    damaged.write_bytes(good)

    out = CliRunner().invoke(main, ["--db", str(other), "import", str(export), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["loras_added"] == 1
    lora.unlink()  # the other library must reproduce without the original
    assert diagnose(other).ok
    with Library(other) as lib:
        assert lib.lora_file(sha).read_bytes() == good
        (row,) = lib.db.execute("SELECT id FROM generations").fetchall()
        engine.unload_loras()
        result = reproduce(lib, engine, row[0])
    assert result["match"], result
    with Library(isolated_library) as lib:
        assert lib.get_generation(gen["id"])["image_sha256"] == result["stored_sha256"]


def test_export_without_loras_stays_format_1(populated_library, tmp_path):
    out = CliRunner().invoke(main, ["export", str(tmp_path / "plain"), "--json"])
    manifest = json.loads(out.output)
    assert manifest["format_version"] == 1 and "loras" not in manifest["counts"]
    assert not (tmp_path / "plain" / "loras").exists()


def test_ab_run_resolves_lora_tags_in_a_variant_prompt_like_generate(isolated_library, engine, lora, tiny_model,
                                                                     monkeypatch):
    from promptkit.templates import Fields, Prompt

    with Library(isolated_library) as lib:
        for name, positive in (("plain", "a fox"), ("tagged", "a fox <lora:style:0.8>")):
            lib.save_prompt(Prompt(template="default", template_digest="", fields=Fields(), positive=positive,
                                   negative=""), name=name)
    sampling = ["--steps", "2", "--cfg", "5", "--sampler", "Euler", "--width", "64", "--height", "64"]
    runner = CliRunner()
    made = runner.invoke(main, ["ab", "new", "fox", "--variant", "A=plain", "--variant", "B=tagged", "--seeds", "1",
                                "--model", tiny_model, *sampling])
    assert made.exit_code == 0, made.output

    # No LoRA folder: refused in one line before anything is generated.
    monkeypatch.delenv("PROMPTKIT_LORA_DIR", raising=False)
    refused = runner.invoke(main, ["ab", "run", "fox", "--no-engine", "--device", "cpu", "-q"])
    assert refused.exit_code != 0 and "<lora:style> in the prompt but no LoRA folder" in refused.output
    assert len(refused.output.strip().splitlines()) == 1
    with Library(isolated_library) as lib:
        assert lib.db["generations"].count == 0

    monkeypatch.setenv("PROMPTKIT_LORA_DIR", str(lora.parent))
    ran = runner.invoke(main, ["ab", "run", "fox", "--no-engine", "--device", "cpu", "-q", "--json"])
    assert ran.exit_code == 0, ran.output
    with Library(isolated_library) as lib:
        rows = {r[0]: lib.get_generation(r[1]) for r in lib.db.execute("SELECT variant, id FROM generations")}
    assert "loras" not in rows["A"]["params"]
    (record,) = rows["B"]["params"]["loras"]
    assert (record["name"], record["scale"], record["sha256"], record["stored"]) == \
        ("style", 0.8, file_sha256(lora), True)

    # The same prompt through `generate` gives the very same image: the tag was applied the same way.
    engine.unload_loras()
    generated = runner.invoke(main, ["generate", "tagged", "--model", tiny_model, "--seeds", "1", "--no-engine",
                                     "--device", "cpu", "-q", "--json", *sampling])
    assert generated.exit_code == 0, generated.output
    assert json.loads(generated.output)[0]["image_sha256"] == rows["B"]["image_sha256"]
    assert rows["A"]["image_sha256"] != rows["B"]["image_sha256"]


def test_iterate_keeps_the_parents_inputs_and_loras_and_rescales_its_tags(isolated_library, tiny_model, lora,
                                                                          tmp_path, monkeypatch):
    """Only the prompt changes: the child runs on the parent's init image and LoRAs; a tag the
    parent had takes the child's scale without a LoRA folder (the library keeps the file)."""
    from PIL import Image

    monkeypatch.delenv("PROMPTKIT_LORA_DIR", raising=False)

    def cli(*args):
        result = CliRunner().invoke(main, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    Image.new("RGB", (64, 64), (200, 90, 40)).save(tmp_path / "init.png")
    cli("build", "--subject", "a heron <lora:style:0.5>", "--save", "heron")
    cli("generate", "heron", "--model", tiny_model, "--seeds", "1-2", "--steps", "2", "--lora-dir", str(lora.parent),
        "--init-image", str(tmp_path / "init.png"), "--strength", "0.6", "--no-engine")
    lora.unlink()  # the child must not need the original file
    child = json.loads(cli("iterate", "heron", "--subject", "a crane <lora:style:0.9>", "--no-engine", "--json"))
    with Library(isolated_library) as lib:
        rows = {r["prompt_id"]: json.loads(r["params"]) for r in lib.db.query(
            "SELECT prompt_id, params FROM generations ORDER BY id")}
    parent_params, child_params = rows[lib_id(isolated_library, "heron")], rows[child["id"]]
    assert len(child["generations"]) == 2
    for key in ("init_image", "strength"):
        assert child_params[key] == parent_params[key]
    assert child_params["mode"] == "img2img"
    assert [(r["sha256"], r["scale"]) for r in child_params["loras"]] == \
        [(parent_params["loras"][0]["sha256"], 0.9)]
    # A tag the parent did not have needs the LoRA folder: one line, and no child prompt is saved.
    with Library(isolated_library) as lib:
        before = lib.count_prompts()
    bad = CliRunner().invoke(main, ["iterate", "heron", "--subject", "a crane <lora:other>", "--no-engine"])
    assert bad.exit_code != 0 and "<lora:other>" in bad.output and len(bad.output.strip().splitlines()) == 1
    with Library(isolated_library) as lib:
        assert lib.count_prompts() == before


def lib_id(db, name):
    with Library(db) as lib:
        return lib.get_prompt(name)["id"]


def test_a_tag_no_lora_stands_for_is_refused_before_any_image(isolated_library, engine):
    """A job that skipped tag resolution (the studio, a script) must not quietly run without the LoRA."""
    from promptkit.errors import BadParameter
    from promptkit.templates import Fields, Prompt

    with Library(isolated_library) as lib:
        prompt = lib.get_prompt(lib.save_prompt(Prompt(template="default", template_digest="", fields=Fields(),
                                                       positive="a heron <lora:style:0.7>", negative="")))
        job = GenerationJob(prompt=prompt, params=GenerationParams(**FAST), seeds=[1])
        with pytest.raises(BadParameter, match=r"<lora:style> tag was not resolved"):
            run_job(lib, engine, job)
        assert lib.db["generations"].count == 0


def test_a_dotted_lora_name_in_a_tag_is_the_file_it_resolves_to(isolated_library, engine, lora, tmp_path, monkeypatch):
    """`<lora:v1.5-style>` names v1.5-style.safetensors: the job's tag check must see it as resolved."""
    dotted = lora.with_name("v1.5-style.safetensors")
    lora.rename(dotted)
    made = generate(isolated_library, engine, "a heron <lora:v1.5-style:0.6>", InputRequest(lora_dir=str(dotted.parent)))
    assert len(made) == 1
    with Library(isolated_library) as lib:
        loras = lib.get_generation(made[0]["id"])["params"]["loras"]
    assert [(r["name"], r["scale"]) for r in loras] == [("v1.5-style", 0.6)]
