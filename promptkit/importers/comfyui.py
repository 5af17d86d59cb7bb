"""ComfyUI: the `prompt` chunk (the API graph that ran) and the `workflow` chunk (the editor's graph).

The API graph is `{node id: {"class_type": ..., "inputs": {name: value or [node id, output]}}}`
(ComfyUI's nodes.py SaveImage writes it with `json.dumps`). The prompt is recovered by following
the sampler's `positive`/`negative` inputs back to the text-encode nodes, through conditioning
nodes (ControlNet, FluxGuidance, ...) and primitive or string nodes holding the text. The
model is followed back through LoRA loaders to the checkpoint loader, the latent to the empty
latent (size) or a VAE encode (img2img). What cannot be known for certain (several samplers,
text combined or built at run time, unknown custom nodes) is named in `uncertain`, not guessed.
The workflow chunk is only kept verbatim, and read when there is no API graph.
"""

from __future__ import annotations

from typing import Any

from . import ImportedImage, UnreadableImage
from .common import load_json, number

MAX_DEPTH = 64          # how far back a link is followed
MAX_NODES = 20_000
SAMPLER_INPUTS = ("positive", "negative")
TEXT_INPUTS = ("text", "text_g", "string", "value", "prompt", "text_positive", "t5xxl", "clip_l")
PASS_THROUGH = ("conditioning", "conditioning_to", "conditioning_1")
LOADER_INPUTS = ("ckpt_name", "unet_name", "model_name", "model_path")


def is_api_graph(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(
        isinstance(node, dict) and "class_type" in node for node in value.values())


def read(text: dict[str, str], container: str) -> ImportedImage:
    raw = {key: text[key] for key in ("prompt", "workflow") if key in text}
    graph = load_json(text["prompt"], "ComfyUI `prompt`") if "prompt" in text else None
    if not is_api_graph(graph):
        workflow = load_json(text.get("workflow", "{}"), "ComfyUI `workflow`")
        graph = workflow_as_graph(workflow)
        if not graph:
            raise UnreadableImage("its ComfyUI graph has no nodes")
    if len(graph) > MAX_NODES:
        raise UnreadableImage(f"its ComfyUI graph has {len(graph)} nodes, over the {MAX_NODES} limit")
    return Graph(graph).read(container, raw)


class Graph:
    """One API graph, read."""

    def __init__(self, nodes: dict[str, Any]) -> None:
        self.nodes = {str(k): v for k, v in nodes.items() if isinstance(v, dict)}
        self.uncertain: list[str] = []
        self.settings: dict[str, Any] = {}

    def node(self, link: Any) -> tuple[str, dict[str, Any]] | None:
        if isinstance(link, list) and len(link) == 2 and str(link[0]) in self.nodes:
            return str(link[0]), self.nodes[str(link[0])]
        return None

    @staticmethod
    def inputs(node: dict[str, Any]) -> dict[str, Any]:
        value = node.get("inputs")
        return value if isinstance(value, dict) else {}

    def samplers(self) -> list[str]:
        return [nid for nid, node in self.nodes.items()
                if any(k in self.inputs(node) for k in ("positive", "guider", "conditioning"))
                and any(k in self.inputs(node) for k in ("seed", "noise_seed", "noise", "latent_image"))
                and "sampler" in str(node.get("class_type", "")).lower()]

    def value(self, value: Any, depth: int = 0) -> Any:
        """A scalar input: literal, or followed back through primitive nodes."""
        if depth > MAX_DEPTH:
            self.uncertain.append("a value is linked deeper than promptkit follows")
            return None
        found = self.node(value)
        if found is None:
            return None if isinstance(value, (list, dict)) else value
        nid, node = found
        inputs = self.inputs(node)
        for key in ("value", "seed", "noise_seed", "int", "float", "number", "string", "text"):
            if key in inputs:
                return self.value(inputs[key], depth + 1)
        self.uncertain.append(f"a value comes from node {nid} ({node.get('class_type')}), computed at run time")
        return None

    def text(self, value: Any, depth: int = 0) -> str | None:
        """A text input: literal or from primitive/string nodes; None when built at run time."""
        if isinstance(value, str):
            return value
        found = self.node(value)
        if found is None or depth > MAX_DEPTH:
            return None
        nid, node = found
        inputs = self.inputs(node)
        literal = [key for key in TEXT_INPUTS if key in inputs]
        if len(literal) == 1 or (literal and all(inputs[k] == inputs[literal[0]] for k in literal)):
            return self.text(inputs[literal[0]], depth + 1)
        self.uncertain.append(f"text from node {nid} ({node.get('class_type')}) is built at run time")
        return None

    def conditioning(self, link: Any, depth: int = 0, output: str = "positive") -> list[str]:
        """The texts a conditioning input comes from (several when conditionings are combined)."""
        found = self.node(link)
        if found is None or depth > MAX_DEPTH:
            return []
        nid, node = found
        inputs, kind = self.inputs(node), str(node.get("class_type", ""))
        if "control_net" in inputs and output == "positive":
            self._controlnet(inputs)
        if kind == "FluxGuidance" or ("guidance" in inputs and "conditioning" in inputs):
            self.settings["guidance"] = number(self.value(inputs.get("guidance")))
        if "clip" in inputs and any(k in inputs for k in TEXT_INPUTS):
            self._clip(inputs["clip"])
            texts = [self.text(inputs[k]) for k in ("text", "text_g", "prompt", "t5xxl") if k in inputs][:1] or \
                    [self.text(inputs[k]) for k in TEXT_INPUTS if k in inputs][:1]
            extra = [k for k in ("text_l", "clip_l") if k in inputs and self.text(inputs[k]) != texts[0]]
            if extra:
                self.uncertain.append(f"node {nid} ({kind}) has a second text ({extra[0]}); the first is kept")
            return [t for t in texts if t is not None]
        if output in inputs and isinstance(inputs[output], list):  # ControlNetApplyAdvanced and the like
            index = link[1] if isinstance(link, list) and len(link) == 2 else 0
            return self.conditioning(inputs[SAMPLER_INPUTS[index] if index in (0, 1) else output], depth + 1, output)
        sources = [inputs[k] for k in PASS_THROUGH if isinstance(inputs.get(k), list)]
        sources += [v for k, v in inputs.items() if k.startswith("conditioning_") and k not in PASS_THROUGH
                    and isinstance(v, list)]
        if len(sources) > 1:
            self.uncertain.append(f"node {nid} ({kind}) combines {len(sources)} conditionings; their texts are joined")
        if not sources:
            self.uncertain.append(f"the {output} prompt comes from node {nid} ({kind}), which promptkit does not read")
        return [t for source in sources for t in self.conditioning(source, depth + 1, output)]

    def _clip(self, link: Any, depth: int = 0) -> None:
        found = self.node(link)
        if found is None or depth > MAX_DEPTH:
            return
        _, node = found
        inputs = self.inputs(node)
        if "stop_at_clip_layer" in inputs:
            layer = number(self.value(inputs["stop_at_clip_layer"]), int)
            self.settings["clip_skip"] = -layer if layer is not None else None
        if "clip" in inputs:
            self._clip(inputs["clip"], depth + 1)

    def _controlnet(self, inputs: dict[str, Any]) -> None:
        unit: dict[str, Any] = {"scale": number(self.value(inputs.get("strength", 1.0))),
                                "start": number(self.value(inputs.get("start_percent", 0.0))),
                                "end": number(self.value(inputs.get("end_percent", 1.0)))}
        loader = self.node(inputs["control_net"])
        if loader is not None:
            unit["model"] = self.value(self.inputs(loader[1]).get("control_net_name"))
        self.settings.setdefault("controlnets", []).append({k: v for k, v in unit.items() if v is not None})

    def model(self, link: Any, depth: int = 0) -> None:
        """Checkpoint and LoRAs, followed back from a sampler's (or guider's) model input."""
        found = self.node(link)
        if found is None or depth > MAX_DEPTH:
            return
        nid, node = found
        inputs = self.inputs(node)
        if "lora_name" in inputs:
            lora = {"name": self.value(inputs["lora_name"]),
                    "scale": number(self.value(inputs.get("strength_model", inputs.get("strength", 1.0))))}
            if "strength_clip" in inputs:
                lora["clip_scale"] = number(self.value(inputs["strength_clip"]))
            self.settings.setdefault("loras", []).insert(0, lora)
        elif any("lora" in key.lower() for key in inputs):
            self.uncertain.append(f"node {nid} ({node.get('class_type')}) may apply LoRAs promptkit does not read")
        loader = next((k for k in LOADER_INPUTS if k in inputs), None)
        if loader is not None:
            self.settings["model"] = self.value(inputs[loader])
            return
        if "model" in inputs:
            self.model(inputs["model"], depth + 1)
        else:
            self.uncertain.append(f"the model comes from node {nid} ({node.get('class_type')}), not a checkpoint loader")

    def latent(self, link: Any, depth: int = 0) -> None:
        found = self.node(link)
        if found is None or depth > MAX_DEPTH:
            return
        _, node = found
        inputs = self.inputs(node)
        if "width" in inputs and "height" in inputs:
            self.settings["width"] = number(self.value(inputs["width"]), int)
            self.settings["height"] = number(self.value(inputs["height"]), int)
        elif "pixels" in inputs or "image" in inputs:
            self.settings["img2img"] = True
        elif "samples" in inputs:
            self.latent(inputs["samples"], depth + 1)

    def read(self, container: str, raw: dict[str, str]) -> ImportedImage:
        samplers = self.samplers()
        if not samplers:
            raise UnreadableImage("its ComfyUI graph has no sampler node promptkit can read")
        first = [s for s in samplers if not self._after_sampler(s, set(samplers))] or samplers
        sampler_id = sorted(first, key=lambda s: (len(s), s))[0]
        if len(samplers) > 1:
            self.uncertain.append(f"{len(samplers)} sampler nodes; the settings are node {sampler_id}'s "
                                  f"({self.nodes[sampler_id].get('class_type')}), the first pass")
        positive, negative = self._sampler(sampler_id)
        image = ImportedImage(tool="comfyui", container=container, positive=positive, negative=negative,
                              settings=self.settings, raw=raw, uncertain=list(dict.fromkeys(self.uncertain)),
                              other={"sampler_node": sampler_id,
                                     "class_types": sorted({str(n.get("class_type")) for n in self.nodes.values()})})
        return image.clean()

    def _after_sampler(self, nid: str, samplers: set[str]) -> bool:
        """Whether sampler NID's latent comes from another sampler (a hires or refiner pass)."""
        link = self.inputs(self.nodes[nid]).get("latent_image")
        for _ in range(MAX_DEPTH):
            found = self.node(link)
            if found is None:
                return False
            if found[0] in samplers:
                return True
            inputs = self.inputs(found[1])
            link = inputs.get("samples", inputs.get("latent"))
        return False

    def _sampler(self, nid: str) -> tuple[str, str]:
        inputs, found = self.inputs(self.nodes[nid]), self.settings
        guider = self.node(inputs.get("guider"))
        conditioning = dict(inputs)
        if guider is not None:  # SamplerCustomAdvanced: CFGGuider / BasicGuider hold cfg, model and the prompts
            conditioning = self.inputs(guider[1])
            found["cfg"] = number(self.value(conditioning.get("cfg")))
            if "conditioning" in conditioning and "positive" not in conditioning:
                conditioning = {**conditioning, "positive": conditioning["conditioning"]}
        found["seed"] = number(self.value(inputs.get("seed", inputs.get("noise_seed"))), int)
        if found["seed"] is None and self.node(inputs.get("noise")):
            found["seed"] = number(self.value(self.inputs(self.node(inputs["noise"])[1]).get("noise_seed")), int)
        found["steps"] = number(self.value(inputs.get("steps")), int)
        found.setdefault("cfg", number(self.value(inputs.get("cfg"))))
        found["sampler"] = self.value(inputs.get("sampler_name"))
        found["scheduler"] = self.value(inputs.get("scheduler"))
        found["strength"] = number(self.value(inputs.get("denoise")))
        self._custom_sampling(inputs)
        self.model(conditioning.get("model", inputs.get("model")))
        self.latent(inputs.get("latent_image"))
        if not found.pop("img2img", False) and found.get("strength") == 1.0:
            found.pop("strength")
        texts = {side: self.conditioning(conditioning[side], output=side) if side in conditioning else []
                 for side in SAMPLER_INPUTS}
        if not texts["positive"]:
            self.uncertain.append("the positive prompt could not be read for certain")
        return ", ".join(texts["positive"]), ", ".join(texts["negative"])

    def _custom_sampling(self, inputs: dict[str, Any]) -> None:
        """SamplerCustom(Advanced): KSamplerSelect and a scheduler node (BasicScheduler, ...)."""
        select = self.node(inputs.get("sampler"))
        if select is not None:
            self.settings["sampler"] = self.value(self.inputs(select[1]).get("sampler_name"))
        sigmas = self.node(inputs.get("sigmas"))
        if sigmas is not None:
            nid, node = sigmas
            sched = self.inputs(node)
            self.settings["steps"] = number(self.value(sched.get("steps")), int)
            self.settings["scheduler"] = self.value(sched.get("scheduler")) or \
                str(node.get("class_type", "")).replace("Scheduler", "").lower() or None
            if "denoise" in sched:
                self.settings["strength"] = number(self.value(sched["denoise"]))


# -- the editor's workflow, when there is no API graph ------------------------------------

# widgets_values order of the core nodes (ComfyUI's nodes.py INPUT_TYPES, `control_after_generate` after a seed)
WIDGETS = {
    "KSampler": ["seed", None, "steps", "cfg", "sampler_name", "scheduler", "denoise"],
    "KSamplerAdvanced": ["add_noise", "noise_seed", None, "steps", "cfg", "sampler_name", "scheduler",
                         "start_at_step", "end_at_step", "return_with_leftover_noise"],
    "CLIPTextEncode": ["text"], "CheckpointLoaderSimple": ["ckpt_name"], "UNETLoader": ["unet_name", "weight_dtype"],
    "EmptyLatentImage": ["width", "height", "batch_size"], "EmptySD3LatentImage": ["width", "height", "batch_size"],
    "LoraLoader": ["lora_name", "strength_model", "strength_clip"], "LoraLoaderModelOnly": ["lora_name", "strength_model"],
    "CLIPSetLastLayer": ["stop_at_clip_layer"], "PrimitiveNode": ["value"], "FluxGuidance": ["guidance"],
    "ControlNetLoader": ["control_net_name"], "ControlNetApply": ["strength"],
    "ControlNetApplyAdvanced": ["strength", "start_percent", "end_percent"],
}


def workflow_as_graph(workflow: Any) -> dict[str, Any]:
    """The editor's workflow as an API-like graph: links as [node, output], core nodes' widgets by name."""
    if not isinstance(workflow, dict) or not isinstance(workflow.get("nodes"), list):
        return {}
    links = {}
    for link in workflow.get("links") or []:
        if isinstance(link, list) and len(link) >= 5:
            links[link[0]] = [str(link[1]), link[2]]
    graph: dict[str, Any] = {}
    for node in workflow["nodes"]:
        if not isinstance(node, dict) or "id" not in node:
            continue
        kind = str(node.get("type", ""))
        inputs: dict[str, Any] = {}
        widgets = node.get("widgets_values") if isinstance(node.get("widgets_values"), list) else []
        for name, value in zip(WIDGETS.get(kind, []), widgets):
            if name:
                inputs[name] = value
        for slot in node.get("inputs") or []:
            if isinstance(slot, dict) and slot.get("link") in links:
                inputs[str(slot.get("name"))] = links[slot["link"]]
        graph[str(node["id"])] = {"class_type": kind, "inputs": inputs}
    return graph
