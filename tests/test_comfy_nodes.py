"""The ComfyUI node pack, loaded and run the way ComfyUI does it (no ComfyUI needed).

`load_like_comfyui` follows ComfyUI's `nodes.load_custom_node` for a folder in `custom_nodes/`: the
folder is imported as a package named after its path (dots as `_x_`) through
`importlib.util.spec_from_file_location(name, folder/__init__.py)`, registered in `sys.modules`, then
`NODE_CLASS_MAPPINGS` and `NODE_DISPLAY_NAME_MAPPINGS` are read. `run_workflow` executes an API-format
workflow (what POST /prompt takes) as ComfyUI's executor does: inputs checked against the declared
types (links by the source's RETURN_TYPES, widget values by type, range and COMBO list), the class made
with no arguments, FUNCTION called with keywords, hidden PROMPT / EXTRA_PNGINFO filled in.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from promptkit.errors import PromptkitError

ROOT = Path(__file__).resolve().parents[1]
WIDGET_TYPES = {"INT": int, "FLOAT": (int, float), "STRING": str, "BOOLEAN": bool}
COMFY_TYPES = {*WIDGET_TYPES, "IMAGE", "LATENT", "MASK", "CONDITIONING", "MODEL", "CLIP", "VAE"}
HIDDEN = {"PROMPT", "EXTRA_PNGINFO", "UNIQUE_ID", "DYNPROMPT"}
OPTION_KEYS = {"default", "min", "max", "step", "round", "multiline", "tooltip", "forceInput",
               "control_after_generate"}
NODES = {"PromptkitBuildPrompt", "PromptkitLoadPrompt", "PromptkitSaveToLibrary", "PromptkitABVariant"}


def load_like_comfyui(folder: Path):
    """ComfyUI's load_custom_node for a folder module."""
    module_path = str(folder)
    name = module_path.replace(".", "_x_")
    spec = importlib.util.spec_from_file_location(name, os.path.join(module_path, "__init__.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    for node_name, node_cls in module.NODE_CLASS_MAPPINGS.items():
        node_cls.RELATIVE_PYTHON_MODULE = f"custom_nodes.{folder.name}"
    return module


class EmptyImage:
    """ComfyUI's core EmptyImage (nodes.py): a solid colour, IMAGE [batch, height, width, 3] in 0-1."""

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "generate"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"width": ("INT", {"default": 512, "min": 1, "max": 16384}),
                             "height": ("INT", {"default": 512, "min": 1, "max": 16384}),
                             "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096}),
                             "color": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFF})}}

    def generate(self, width, height, batch_size=1, color=0):
        channels = [torch.full([batch_size, height, width, 1], ((color >> shift) & 0xFF) / 0xFF) for shift in (16, 8, 0)]
        return (torch.cat(channels, dim=-1),)


@pytest.fixture(scope="module")
def pack():
    return load_like_comfyui(ROOT / "comfyui")


def _check_value(node: str, name: str, spec: tuple, value):
    kind, options = spec[0], (spec[1] if len(spec) > 1 else {})
    if isinstance(kind, list):
        assert value in kind, f"{node}.{name}: {value!r} not among {kind}"
        return
    assert isinstance(value, WIDGET_TYPES[kind]) and not (kind != "BOOLEAN" and isinstance(value, bool)), (node, name)
    if "min" in options:
        assert options["min"] <= value <= options["max"], (node, name, value)


def run_workflow(workflow: dict, classes: dict) -> dict:
    """Execute an API-format workflow; returns node id -> its outputs (a tuple, or the dict of an output node)."""
    done: dict[str, object] = {}
    while len(done) < len(workflow):
        for node_id, node in workflow.items():
            links = [v for v in node["inputs"].values() if isinstance(v, list)]
            if node_id in done or any(src not in done for src, _ in links):
                continue
            cls = classes[node["class_type"]]
            declared = cls.INPUT_TYPES()
            specs = {**declared.get("required", {}), **declared.get("optional", {})}
            assert set(declared.get("required", {})) <= set(node["inputs"]), node["class_type"]
            kwargs = {}
            for name, value in node["inputs"].items():
                if isinstance(value, list):
                    source = workflow[value[0]]["class_type"]
                    assert classes[source].RETURN_TYPES[value[1]] == specs[name][0], (node["class_type"], name)
                    kwargs[name] = done[value[0]][value[1]]
                else:
                    _check_value(node["class_type"], name, specs[name], value)
                    kwargs[name] = value
            hidden = declared.get("hidden", {})
            kwargs.update({k: workflow for k, v in hidden.items() if v == "PROMPT"})
            kwargs.update({k: {"workflow": {"nodes": len(workflow)}} for k, v in hidden.items() if v == "EXTRA_PNGINFO"})
            result = getattr(cls(), cls.FUNCTION)(**kwargs)
            if isinstance(result, dict):
                assert cls.OUTPUT_NODE and set(result) <= {"ui", "result"}
            else:
                assert isinstance(result, tuple) and len(result) == len(cls.RETURN_TYPES)
            done[node_id] = result
    return done


def build_and_save(seed=5, batch=2, family="sd1", **save) -> dict:
    return {
        "1": {"class_type": "PromptkitBuildPrompt", "inputs": {
            "subject": "a red fox", "action": "", "environment": "in snow", "style": "watercolor",
            "quality": "masterpiece", "template": "default", "negative_preset": "standard", "family": family}},
        "2": {"class_type": "EmptyImage", "inputs": {"width": 48, "height": 32, "batch_size": batch, "color": 0xC04020}},
        "3": {"class_type": "PromptkitSaveToLibrary", "inputs": {
            "images": ["2", 0], "positive": ["1", 0], "negative": ["1", 1], "seed": seed, "steps": 20, "cfg": 6.5,
            "sampler_name": "dpmpp_2m", "scheduler": "karras", "model_name": "sd15-pruned.safetensors",
            "library": "", **save}},
    }


def classes_of(pack) -> dict:
    return {**pack.NODE_CLASS_MAPPINGS, "EmptyImage": EmptyImage}


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "promptkit", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_the_pack_loads_as_comfyui_loads_it_and_declares_comfyui_types(pack, tmp_path):
    assert set(pack.NODE_CLASS_MAPPINGS) == NODES == set(pack.NODE_DISPLAY_NAME_MAPPINGS)
    linked = tmp_path / "custom_nodes" / "promptkit"  # the other install: a symlink to promptkit/comfy
    linked.parent.mkdir()
    linked.symlink_to(ROOT / "promptkit" / "comfy")
    assert load_like_comfyui(linked).NODE_CLASS_MAPPINGS == pack.NODE_CLASS_MAPPINGS
    for name, cls in pack.NODE_CLASS_MAPPINGS.items():
        declared = cls.INPUT_TYPES()
        json.dumps(declared)  # GET /object_info sends it as JSON
        assert set(declared) <= {"required", "optional", "hidden"} and declared["required"], name
        for section in ("required", "optional"):
            for input_name, spec in declared.get(section, {}).items():
                kind, options = spec[0], (spec[1] if len(spec) > 1 else {})
                assert isinstance(kind, list) and kind or kind in COMFY_TYPES, (name, input_name)
                assert set(options) <= OPTION_KEYS, (name, input_name)
                if "default" in options:
                    _check_value(name, input_name, spec, options["default"])
        assert set(declared.get("hidden", {}).values()) <= HIDDEN
        assert all(kind in COMFY_TYPES for kind in cls.RETURN_TYPES)
        assert len(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)) == len(cls.RETURN_TYPES)
        assert callable(getattr(cls(), cls.FUNCTION)) and cls.CATEGORY == "promptkit"
        assert cls.OUTPUT_NODE is (name == "PromptkitSaveToLibrary")


def test_loading_the_pack_imports_neither_comfyui_nor_torch():
    probe = ("import importlib.util, os, sys\n"
             f"path = {str(ROOT / 'comfyui')!r}\n"
             "spec = importlib.util.spec_from_file_location(path.replace('.', '_x_'), os.path.join(path, '__init__.py'))\n"
             "module = importlib.util.module_from_spec(spec); sys.modules[spec.name] = module\n"
             "spec.loader.exec_module(module)\n"
             "[cls.INPUT_TYPES() for cls in module.NODE_CLASS_MAPPINGS.values()]\n"
             "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'diffusers', 'comfy', 'folder_paths', "
             "'nodes', 'server', 'execution', 'sqlite_utils'}))\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_build_prompt_uses_the_builder_and_lints_for_the_family(pack):
    build = pack.NODE_CLASS_MAPPINGS["PromptkitBuildPrompt"]()
    positive, negative, lint = build.build("a red fox", "", "in snow", "watercolor", "masterpiece", "default",
                                           "standard", "flux2-klein", negative="blurry")
    from promptkit.service.prompts import render_prompt

    same = render_prompt(subject="a red fox", environment="in snow", style=["watercolor"], quality=["masterpiece"],
                         negative=["blurry"])
    assert (positive, negative) == (same.positive, same.negative)
    assert "tokens: positive" in lint and "warning: FLUX.2 klein ignores the negative prompt" in lint
    assert "ignores the negative" not in build.build("a fox", "", "", "", "", "default", "standard", "sd1")[2]
    with pytest.raises(PromptkitError, match="unknown family 'sd9'"):
        build.build("a fox", "", "", "", "", "default", "standard", "sd9")


def test_save_to_library_writes_rows_promptkit_show_displays_and_reproduce_declines(pack, isolated_library):
    outputs = run_workflow(build_and_save(), classes_of(pack))
    saved = outputs["3"]["ui"]["promptkit"]
    assert len(saved) == 2 and outputs["3"]["ui"]["images"] == []  # no preview outside ComfyUI
    from promptkit.library import Library
    from promptkit.pnginfo import read_png_text

    with Library(isolated_library) as lib:
        rows = [lib.get_generation(item["id"]) for item in saved]
        prompt = lib.get_prompt(rows[0]["prompt_id"])
        parameters = lib.image_parameters(rows[0]["id"])
        chunks = read_png_text(lib.generation_image(rows[1]["id"]))
    assert {(r["source"], r["reproducible"], r["seed"], r["width"], r["height"]) for r in rows} == {
        ("comfyui", 0, 5, 48, 32)}
    assert [r["batch"] for r in rows] == [{"size": 2, "index": i, "seeds": [5, 5]} for i in (0, 1)]
    assert json.loads(rows[0]["source_metadata"])["prompt"]["3"]["class_type"] == "PromptkitSaveToLibrary"
    assert prompt["template"] == "default" and prompt["fields"]["style"] == ["watercolor"]  # Build Prompt's
    assert "Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 6.5, Seed: 5, Size: 48x32" in parameters
    assert "Model: sd15-pruned" in parameters and "a red fox" in parameters and "promptkit" in chunks
    again = run_workflow(build_and_save(seed=6, batch=1), classes_of(pack))["3"]["ui"]["promptkit"]
    assert again[0]["prompt_id"] == prompt["id"]  # the same text is filed under the same prompt
    shown = cli("show", str(prompt["id"]))
    assert shown.returncode == 0, shown.stderr
    for row in rows:
        assert f"gen {row['id']:>5} seed 5" in shown.stdout and row["image_path"] in shown.stdout
    refused = cli("reproduce", str(rows[0]["id"]))
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1 and "made by 'comfyui'" in refused.stderr
    assert "cannot be regenerated" in refused.stderr


def test_load_prompt_by_name_or_id_and_save_attaches_to_it(pack, saved_prompt, isolated_library):
    load = pack.NODE_CLASS_MAPPINGS["PromptkitLoadPrompt"]()
    assert load.load("lighthouse") == load.load(str(saved_prompt["id"])) == (
        saved_prompt["positive"], saved_prompt["negative"])
    assert "\n" in pack.NODE_CLASS_MAPPINGS["PromptkitLoadPrompt"].IS_CHANGED("lighthouse")
    with pytest.raises(PromptkitError, match="no prompt with id or name 'nope'"):
        load.load("nope")
    workflow = {
        "1": {"class_type": "PromptkitLoadPrompt", "inputs": {"prompt": "lighthouse", "library": ""}},
        "2": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": 1, "color": 255}},
        "3": {"class_type": "PromptkitSaveToLibrary", "inputs": {
            "images": ["2", 0], "positive": ["1", 0], "negative": ["1", 1], "seed": 2**40, "steps": 4, "cfg": 1.0,
            "sampler_name": "res_multistep", "scheduler": "beta", "model_name": "flux1-dev.safetensors",
            "library": str(isolated_library)}},
    }
    saved = run_workflow(workflow, classes_of(pack))["3"]["ui"]["promptkit"]
    assert saved[0]["prompt_id"] == saved_prompt["id"]
    from promptkit.library import Library

    with Library(isolated_library) as lib:
        row = lib.get_generation(saved[0]["id"])
    assert (row["sampler"], row["seed"], row["model"]) == ("res_multistep beta", 2**40, "flux1-dev.safetensors")


def test_ab_variant_fills_the_cells_the_review_page_pairs(pack, isolated_library):
    import promptkit
    from promptkit.service.experiments import show_experiment

    with promptkit.open_library(isolated_library) as lib:
        for name, subject in (("fox-a", "a fox"), ("fox-b", "a fox at night")):
            promptkit.build_prompt(lib, subject=subject, save=name)
        promptkit.new_experiment(lib, "foxes", ["A=fox-a", "B=fox-b:cfg=9"], seeds=[1, 2])
    classes = classes_of(pack)
    for label, seed in (("A", 1), ("B", 1), ("A", 3)):
        workflow = {
            "1": {"class_type": "PromptkitABVariant", "inputs": {"experiment": "foxes", "variant": label,
                                                                 "seed": seed, "library": ""}},
            "2": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": 1, "color": seed}},
            "3": {"class_type": "PromptkitSaveToLibrary", "inputs": {
                "images": ["2", 0], "positive": ["1", 0], "negative": ["1", 1], "seed": ["1", 2], "steps": ["1", 3],
                "cfg": ["1", 4], "sampler_name": "euler", "scheduler": "normal", "model_name": "m.safetensors",
                "library": "", "experiment": "foxes", "variant": label}},
        }
        outputs = run_workflow(workflow, classes)
        assert outputs["1"][4] == (9.0 if label == "B" else 7.0)
    with promptkit.open_library(isolated_library) as lib:
        pair = promptkit.next_pair(lib, "foxes")
        shown = show_experiment(lib, "foxes")
    assert pair["seed"] == 1 and {pair["left"]["label"], pair["right"]["label"]} == {"A", "B"}
    assert shown["seeds"] == [1, 2, 3]  # seed 3 came from ComfyUI's queue
    save = classes["PromptkitSaveToLibrary"]()
    args = dict(images=EmptyImage().generate(32, 32)[0], seed=1, steps=25, cfg=7.0, experiment="foxes", variant="A",
                **_text_of(isolated_library, "fox-a"))
    with pytest.raises(PromptkitError, match="already"):
        save.save(**args)
    with pytest.raises(PromptkitError, match="not variant 'B'"):
        save.save(**{**args, "variant": "B", "seed": 2})
    with pytest.raises(PromptkitError, match="cfg 7.0 but the variant sets 9"):
        save.save(**{**args, "variant": "B", "seed": 2, **_text_of(isolated_library, "fox-b")})
    with pytest.raises(PromptkitError, match="experiment seeds go from 0 to 4294967295"):
        save.save(**{**args, "seed": 2**33})
    with pytest.raises(PromptkitError, match="no variant 'C'"):
        classes["PromptkitABVariant"]().variant("foxes", "C", 1)


def _text_of(db, name: str) -> dict:
    from promptkit.library import Library

    with Library(db) as lib:
        row = lib.get_prompt(name)
    return {"positive": row["positive"], "negative": row["negative"]}


def test_images_in_comfyui_layout_only(pack):
    from promptkit.comfy.saving import a1111_sampler, pil_images

    rgba = torch.rand(1, 8, 12, 4)
    grey = torch.zeros(2, 8, 12, 1)
    assert [im.size for im in pil_images(rgba) + pil_images(grey)] == [(12, 8)] * 3
    assert pil_images(torch.ones(1, 2, 2, 3))[0].getpixel((0, 0)) == (255, 255, 255)
    with pytest.raises(PromptkitError, match=r"\[batch, height, width, channels\]"):
        pil_images(torch.zeros(1, 3, 8, 8).permute(0, 1, 2, 3)[:, :, :, :2])
    assert a1111_sampler("euler_ancestral", "normal") == "Euler a"
    assert a1111_sampler("dpmpp_2m_sde", "exponential") == "DPM++ 2M SDE Exponential"
