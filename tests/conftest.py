"""Shared fixtures: every test gets its own library; the tiny model is built once per session."""

import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_library(tmp_path, monkeypatch):
    """Point the default library (and cwd) at a temporary folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PROMPTKIT_DB", str(tmp_path / "library.db"))
    monkeypatch.delenv("PROMPTKIT_TEMPLATES", raising=False)
    monkeypatch.delenv("PROMPTKIT_MODEL", raising=False)
    return tmp_path / "library.db"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    from promptkit.tinymodel import write_tiny_pipeline

    folder = tmp_path_factory.mktemp("models") / "tiny-sd"
    write_tiny_pipeline(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_engine(tiny_model):
    from promptkit.engine import Engine, EngineOptions

    return Engine.get(tiny_model, EngineOptions(device="cpu"))


@pytest.fixture(scope="session")
def family_models(tmp_path_factory) -> dict[str, str]:
    """A tiny random-weight pipeline folder per flow-matching family (sd3, flux, flux2-klein, zimage,
    qwenimage, chroma), written once per test session; tests only read them."""
    from promptkit.tinyfamilies import write_tiny_family

    root = tmp_path_factory.mktemp("families")
    return {kind: str(write_tiny_family(root / kind, kind))
            for kind in ("sd3", "flux", "flux2-klein", "zimage", "qwenimage", "chroma")}


@pytest.fixture
def saved_prompt(isolated_library):
    from promptkit.library import Library
    from promptkit.templates import Fields, PromptBuilder

    prompt = PromptBuilder().render(Fields(subject="a lighthouse", style=["watercolor"]))
    with Library(isolated_library) as lib:
        prompt_id = lib.save_prompt(prompt, name="lighthouse")
        return lib.get_prompt(prompt_id)


@pytest.fixture(scope="session")
def _sample_library_files(tmp_path_factory):
    from promptkit.library import Library
    from sample_library import fill_sample_library

    db = tmp_path_factory.mktemp("sample") / "library.db"
    with Library(db) as lib:
        contents = fill_sample_library(lib)
    return db, contents


def _copy_library(db: Path, target: Path) -> None:
    """A library built once per session, copied to TARGET with its images: a private copy per test."""
    import shutil

    from promptkit.library import images_dir_for

    shutil.copy2(db, target)
    shutil.copytree(images_dir_for(db), images_dir_for(target))


@pytest.fixture
def sample_library(isolated_library, _sample_library_files):
    """The isolated library filled by tests/sample_library.py (prompts, lineage, images, ratings).

    Built once per session and copied: writing its images durably (fsync) is the slow part."""
    import copy

    db, contents = _sample_library_files
    _copy_library(db, isolated_library)
    return copy.deepcopy(contents)


@pytest.fixture
def live_server(isolated_library, sample_library):
    """The review page over the sample library, served by uvicorn on a free port in a thread."""
    from web_server import LiveServer

    with LiveServer(isolated_library) as server:
        yield server


@pytest.fixture(scope="session")
def populated_library_master(tmp_path_factory, tiny_engine) -> Path:
    """A library with something in every table, built once: prompts with parent links, tags,
    notes and a star; tiny-model generations (two rows sharing one image); ratings; an
    experiment with variants and votes. Tests get copies through `populated_library`."""
    from promptkit.generation import GenerationJob, run_job
    from promptkit.library import Library, utc_now
    from promptkit.params import GenerationParams
    from promptkit.templates import Fields, PromptBuilder

    folder = tmp_path_factory.mktemp("populated")
    builder = PromptBuilder()
    params = GenerationParams(steps=2, cfg=5.0, sampler="Euler")
    with Library(folder / "library.db") as lib:
        first = lib.save_prompt(builder.render(Fields(subject="a lighthouse", style=["watercolor"])), name="lh",
                                tags=["sea", "night"], notes="first try")
        second = lib.save_prompt(builder.render(Fields(subject="a lighthouse at dusk", quality=["8k"])), name="lh2",
                                 parent_id=first, notes="better sky")
        third = lib.save_prompt(builder.render(Fields(subject="a lighthouse at dawn", action="glowing")),
                                parent_id=second, tags=["ünïcode ✓"])
        with lib.write() as db:
            db["prompts"].update(second, {"starred": 1})
            experiment = db["experiments"].insert({"name": "sky", "seeds": "[1, 2]", "params": "{}",
                                                   "model": "tiny", "created_at": utc_now()}).last_pk
            db["variants"].insert_all([{"experiment_id": experiment, "label": "A", "prompt_id": first, "params": "{}"},
                                       {"experiment_id": experiment, "label": "B", "prompt_id": second,
                                        "params": "{}"}])

        def generate(prompt_id, seeds, batch_size=1, **job):
            prompt = lib.get_prompt(prompt_id)
            return run_job(lib, tiny_engine, GenerationJob(prompt=prompt, params=params, seeds=seeds,
                                                            batch_size=batch_size, **job)).generations

        generate(first, [1, 2], batch_size=2)
        generate(third, [7])
        generate(third, [7])  # the same bytes again: two rows, one file
        a = generate(first, [1], experiment_id=experiment, variant="A")[0]["id"]
        b = generate(second, [1], experiment_id=experiment, variant="B")[0]["id"]
        lib.rate(a, 4, "nice")
        lib.rate(b, 5)
        with lib.write() as db:
            db["votes"].insert_all([
                {"experiment_id": experiment, "seed": 1, "left_generation_id": a, "right_generation_id": b,
                 "winner_generation_id": b, "created_at": utc_now()},
                {"experiment_id": experiment, "seed": 1, "left_generation_id": b, "right_generation_id": a,
                 "winner_generation_id": None, "created_at": utc_now()},
            ])
    return folder


@pytest.fixture
def populated_library(isolated_library, populated_library_master) -> Path:
    """A private copy of `populated_library_master` at the default library path."""
    _copy_library(populated_library_master / "library.db", isolated_library)
    return isolated_library


@pytest.fixture(scope="session")
def experiment_library_master(tmp_path_factory, tiny_engine) -> Path:
    """A library with two tiny-model experiments, built once: "sky" (plain vs fancy, seeds 1-4,
    no votes) and "trio" (warm, cool, mono on seeds 1-2). Tests get copies via `experiment_library`."""
    from promptkit.experiments import VariantSpec, create_experiment, run_experiment
    from promptkit.library import Library
    from promptkit.params import GenerationParams
    from promptkit.templates import Fields, PromptBuilder
    from sample_library import EXPERIMENT_LABELS

    folder = tmp_path_factory.mktemp("experiments")
    builder = PromptBuilder()
    params = GenerationParams(steps=2, cfg=5.0, sampler="Euler", width=64, height=64)
    with Library(folder / "library.db") as lib:
        def save(name, **fields):
            return str(lib.save_prompt(builder.render(Fields(**fields)), name=name))

        plain = save("sky-plain", subject="a lighthouse")
        fancy = save("sky-fancy", subject="a lighthouse at dusk", style=["watercolor"], quality=["8k"])
        mono = save("sky-mono", subject="a lighthouse", style=["sketch"])
        create_experiment(lib, "sky", [VariantSpec(EXPERIMENT_LABELS[0], plain), VariantSpec(EXPERIMENT_LABELS[1], fancy)],
                          [1, 2, 3, 4], params, model="tiny")
        create_experiment(lib, "trio", [VariantSpec("warm", plain), VariantSpec("cool", fancy, {"cfg": 7.0}),
                                        VariantSpec("mono", mono)], [1, 2], params, model="tiny")
        for name in ("sky", "trio"):
            run_experiment(lib, tiny_engine, name, batch_size=4)
    return folder


@pytest.fixture
def experiment_library(isolated_library, experiment_library_master) -> Path:
    """A private copy of `experiment_library_master` at the default library path."""
    _copy_library(experiment_library_master / "library.db", isolated_library)
    return isolated_library


@pytest.fixture
def live_experiment_server(experiment_library):
    """The review page over `experiment_library`, served by uvicorn on a free port in a thread."""
    from web_server import LiveServer

    with LiveServer(experiment_library) as server:
        yield server


@pytest.fixture(scope="session")
def studio_engine(tiny_model):
    """One warm engine for the session, the tiny model preloaded (what `serve --model` does);
    shared by the studio's API tests and its browser tests."""
    from promptkit.studio import StudioEngine
    from promptkit.worker import EngineWorker

    worker = EngineWorker()
    worker.preload(tiny_model, {"device": "cpu"})
    return StudioEngine(worker, engine_options={"device": "cpu"})
