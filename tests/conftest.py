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
