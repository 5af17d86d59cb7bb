"""Plugins through entry points (group `promptkit`): listed, their backend generates, their preset,
filter and command work, and a plugin that raises on import is reported in one line and skipped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from plugin_env import REPO, activate, install_dist

PLUGIN = textwrap.dedent('''
    """A test plugin: a seeded backend that needs no torch, a preset, a filter, a judge and a command."""
    import click

    from promptkit.plugins import BackendSpec, hookimpl


    class Solid:
        """`solid:COLOUR`: one flat image per seed, its shade decided by the seed (reproducible)."""

        family = "solid"
        load_seconds = 0.0

        def __init__(self, model):
            self.model = model

        @classmethod
        def load(cls, model, options=None):
            return cls(model)

        def check_request(self, extra):
            pass

        def suggest_batch_size(self, params, count):
            return count

        def describe(self):
            return {"model": self.model, "model_hash": "", "family": "solid", "device": "cpu", "dtype": "",
                    "versions": {"solid": "1"}}

        def run_batch(self, positive, negative, seeds, params, profile=False, inputs=None):
            from PIL import Image

            from promptkit.engine.backend import BatchResult  # the engine package imports torch: not at load

            size = (params.width or 16, params.height or 16)
            images = [Image.new("RGB", size, (seed % 256, len(positive) % 256, 99)) for seed in seeds]
            return BatchResult(images=images, seconds=0.0, info={"width": size[0], "height": size[1]})

        def is_out_of_memory(self, exc):
            return False

        def free_memory(self):
            pass


    @hookimpl
    def promptkit_backends():
        return [BackendSpec("solid", Solid, "flat test images")]


    @hookimpl
    def promptkit_presets():
        return [{"kind": "style", "name": "neon-test", "description": "Neon from a plugin",
                 "positive": "neon glow", "negative": "dull"}]


    @hookimpl
    def promptkit_template_filters():
        return {"shout": lambda text: str(text).upper()}


    @hookimpl
    def promptkit_judges():
        return [type("Judge", (), {"name": "always-left"})()]


    @click.command("hello")
    @click.argument("who")
    def hello(who):
        """Say hello (a plugin's command)."""
        click.echo(f"hello {who}")


    @hookimpl
    def promptkit_cli_commands():
        return [hello]
''')


@pytest.fixture
def plugins_installed(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    (site / "pk_solid.py").write_text(PLUGIN, encoding="utf-8")
    (site / "pk_broken.py").write_text("raise RuntimeError('this plugin is broken\\non purpose')\n", encoding="utf-8")
    install_dist(site, "pk-solid", "1.2.3", {"solid": "pk_solid"})
    install_dist(site, "pk-broken", "0.0.1", {"broken": "pk_broken"})
    activate(monkeypatch, site)
    return site


def _cli(*args: str):
    from click.testing import CliRunner

    from promptkit.cli import main

    return CliRunner().invoke(main, list(args))


def test_plugins_are_listed_with_where_they_come_from(plugins_installed):
    out = _cli("plugins", "--json")
    assert out.exit_code == 0, out.output
    rows = {row["name"]: row for row in json.loads(out.stdout)}
    assert rows["builtin"]["provides"] == {"backends": ["diffusers:"]}
    solid = rows["solid"]
    assert solid["status"] == "loaded" and solid["distribution"] == "pk-solid 1.2.3"
    assert solid["location"] == str(plugins_installed / "pk_solid.py")
    assert solid["provides"] == {"backends": ["solid:"], "presets": ["style/neon-test"], "template_filters": ["shout"],
                                 "judges": ["always-left"], "cli_commands": ["hello"]}
    broken = rows["broken"]
    assert broken["status"] == "failed" and broken["error"] == "RuntimeError: this plugin is broken"
    # Reported once, in one line, on stderr; the listing itself worked.
    assert out.stderr.count("\n") == 1 and "plugin 'broken' (pk-broken 0.0.1) skipped: RuntimeError" in out.stderr
    text = _cli("plugins")
    assert "solid" in text.stdout and "backends: solid:" in text.stdout and "error: RuntimeError" in text.stdout


def test_a_plugin_backend_generates(plugins_installed, saved_prompt, isolated_library):
    import promptkit
    from promptkit.library import Library

    with Library(isolated_library) as lib:
        result = promptkit.generate(lib, "lighthouse", model="solid:flat", seeds="1-3", width=16, height=16,
                                    use_engine=False)
        rows = [lib.get_generation(g["id"]) for g in result["generations"]]
    assert [r["seed"] for r in rows] == [1, 2, 3]
    assert {r["model"] for r in rows} == {"solid:flat"} and {r["reproducible"] for r in rows} == {1}
    assert rows[0]["params"]["family"] == "solid"
    out = _cli("generate", "lighthouse", "--model", "solid:flat", "--seeds", "1-3", "--width", "16", "--height",
               "16", "--json")
    assert out.exit_code == 0, out.output
    assert [g["image_sha256"] for g in json.loads(out.stdout)] == [g["image_sha256"] for g in result["generations"]]
    with Library(isolated_library) as lib:
        assert promptkit.reproduce(lib, result["generations"][1]["id"])["match"]  # through the plugin's backend


def test_plugin_preset_filter_and_command(plugins_installed, tmp_path):
    out = _cli("presets", "--kind", "style", "--json")
    assert out.exit_code == 0, out.output
    assert "plugin 'broken' (pk-broken 0.0.1) skipped" in out.stderr  # and the command still worked
    assert {"kind": "style", "name": "neon-test", "description": "Neon from a plugin", "positive": "neon glow",
            "negative": "dull", "phrase": "neon glow"} in json.loads(out.stdout)
    built = _cli("build", "--subject", "a lighthouse", "--style", "neon-test", "--json")
    assert built.exit_code == 0, built.output
    assert "neon glow" in json.loads(built.stdout)["positive"]
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "loud.j2").write_text("{{ subject | shout }}", encoding="utf-8")
    loud = _cli("build", "--subject", "a lighthouse", "--template", "loud", "--templates", str(templates), "--json")
    assert loud.exit_code == 0, loud.output
    assert json.loads(loud.stdout)["positive"] == "A LIGHTHOUSE"
    hello = _cli("hello", "world")
    assert hello.exit_code == 0 and hello.stdout == "hello world\n"


def test_help_cold_start_loads_no_plugin(plugins_installed):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(plugins_installed)])}
    code = ("import sys\nfrom promptkit.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print([m for m in ('pluggy', 'promptkit.plugins.manager', 'pk_solid', 'importlib.metadata') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]" and "broken" not in out.stderr
