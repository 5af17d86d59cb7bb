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


@pytest.fixture
def sample_library(isolated_library, _sample_library_files):
    """The isolated library filled by tests/sample_library.py (prompts, lineage, images, ratings).

    Built once per session and copied: writing its images durably (fsync) is the slow part."""
    import copy
    import shutil

    from promptkit.library import images_dir_for

    db, contents = _sample_library_files
    shutil.copyfile(db, isolated_library)
    shutil.copytree(images_dir_for(db), images_dir_for(isolated_library))
    return copy.deepcopy(contents)


@pytest.fixture
def live_server(isolated_library, sample_library):
    """The review page over the sample library, served by uvicorn on a free port in a thread."""
    from web_server import LiveServer

    with LiveServer(isolated_library) as server:
        yield server
