"""Typed records of what an image is asked for and what it was made with (no torch, no sqlite).

One place converts them: a GenerationRecord becomes the library's `generations` row and comes
back from it (`to_row` / `from_row`, the row's columns and `params` JSON keys unchanged), the
PNG chunks (`png_chunks` / `from_png_meta`: A1111's `parameters` text and promptkit's JSON), and
A1111 text (`from_infotext`, through A1111's own grammar in `a1111.py`). `GenerationInputs.check`
is the one place the inputs are range-checked.

Privacy: the PNG chunks name models and LoRAs (a local folder or file by its base name) with
their hashes; only the library row keeps the local paths that `reproduce` needs.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .errors import BadParameter, PromptkitError

PARAMETERS_KEY = "parameters"
PROMPTKIT_KEY = "promptkit"
# Recorded on each row's params for search and display, but derived (not inputs): reproduce drops them.
DERIVED_PARAMS = ("family", "mode", "prompt_mode", "flags", "family_info")
WEIGHT_SUFFIXES = (".safetensors", ".ckpt", ".bin", ".pt", ".pth")


def is_local_ref(ref: str) -> bool:
    """Whether a model reference is a local path rather than a hub id (`org/name`)."""
    text = str(ref or "")
    if text.startswith(("/", "~", ".", "\\")) or re.match(r"[A-Za-z]:[\\/]", text) or "\\" in text:
        return True
    return text.count("/") != 1 or text.lower().endswith(WEIGHT_SUFFIXES)


def public_model_name(ref: str) -> str:
    """What a PNG may say about a model: a hub id as given, a local folder or file by its base name."""
    text = str(ref or "")
    if not text or not is_local_ref(text):
        return text
    name = text.replace("\\", "/").rstrip("/").split("/")[-1]
    for suffix in WEIGHT_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadParameter(f"`{name}` must be a number but is {value!r}")
    return float(value)


def _put(target: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        target[key] = value


# -- the prompt, the model, the numbers ------------------------------------------------


@dataclass
class PromptText:
    """The text a generation was asked for, and the template it was built from."""

    positive: str
    negative: str = ""
    template: str | None = None
    template_digest: str | None = None
    fields: Any = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "PromptText":
        """From a prompts row (or PNG metadata): positive, negative, template, template_digest, fields."""
        fields = row.get("fields")
        if isinstance(fields, str):
            try:
                fields = json.loads(fields)
            except ValueError:
                pass
        return cls(positive=row.get("positive") or "", negative=row.get("negative") or "",
                   template=row.get("template"), template_digest=row.get("template_digest"), fields=fields)


@dataclass
class ModelRef:
    """A model by name, hash and family; PATH (a local folder or file) only for the library row."""

    name: str
    hash: str | None = None
    family: str | None = None
    path: str | None = None

    @classmethod
    def from_ref(cls, ref: str, hash: str | None = None, family: str | None = None) -> "ModelRef":
        """From what the engine loaded: a local path (kept as PATH, named by its base name) or a hub id."""
        ref = str(ref or "")
        if ref and is_local_ref(ref):
            return cls(name=public_model_name(ref), hash=hash, family=family, path=ref)
        return cls(name=ref, hash=hash, family=family)

    @property
    def ref(self) -> str:
        """What loads it again: the local path, else the hub id."""
        return self.path or self.name


@dataclass
class Sampling:
    sampler: str
    steps: int
    cfg: float
    width: int | None
    height: int | None
    noise_device: str = "cpu"


@dataclass
class Batch:
    """The batch an image was made in: reproduce re-runs all of it."""

    size: int
    index: int
    seeds: list[int]

    @classmethod
    def single(cls, seed: int) -> "Batch":
        return cls(size=1, index=0, seeds=[int(seed)])

    def to_dict(self) -> dict[str, Any]:
        return {"size": self.size, "index": self.index, "seeds": list(self.seeds)}


# -- inputs beyond the prompt ---------------------------------------------------------


@dataclass
class InitImage:
    """An init image (stored content-addressed) and the denoising strength."""

    sha256: str | None
    strength: float | None = None


@dataclass
class Mask:
    """An inpainting mask (stored content-addressed) and its blur in pixels."""

    sha256: str | None
    blur: int | None = None


@dataclass
class Lora:
    """A LoRA file by name and sha256 with its scale; PATH only for the library row."""

    name: str
    sha256: str
    scale: float = 1.0
    path: str | None = None
    stored: bool = False  # the library keeps a copy (library state: row only)
    context_dim: int | None = None
    text_encoder_2: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Lora":
        return cls(name=data.get("name"), sha256=data.get("sha256"), scale=data.get("scale", 1.0),
                   path=data.get("path"), stored=bool(data.get("stored")), context_dim=data.get("context_dim"),
                   text_encoder_2=bool(data.get("text_encoder_2")))

    def to_dict(self, public: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "sha256": self.sha256, "scale": self.scale,
                                "context_dim": self.context_dim, "text_encoder_2": self.text_encoder_2}
        if not public:
            _put(data, "path", self.path)
            if self.stored:
                data["stored"] = True
        return data


@dataclass
class ControlUnit:
    """A ControlNet unit: its model, control map (IMAGE) and source image by sha256, and numbers."""

    model: str
    module: str = "none"
    image: str | None = None  # the control map the model saw
    source: str | None = None  # the image the map was made from (when a module made one)
    scale: float = 1.0
    start: float = 0.0
    end: float = 1.0
    model_hash: str | None = None
    config: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ControlUnit":
        return cls(model=data.get("model"), module=data.get("module", "none"), image=data.get("image"),
                   source=data.get("source"), scale=data.get("scale", 1.0), start=data.get("start", 0.0),
                   end=data.get("end", 1.0), model_hash=data.get("model_hash"), config=data.get("config"))

    def to_dict(self, public: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {"model": public_model_name(self.model) if public else self.model,
                                "module": self.module}
        _put(data, "image", self.image)
        _put(data, "source", self.source)
        data.update(scale=self.scale, start=self.start, end=self.end)
        _put(data, "model_hash", self.model_hash)
        _put(data, "config", self.config)
        return data


@dataclass
class Refiner:
    """An SDXL refiner model and the share of the steps after which it takes over."""

    model: str
    switch: float = 0.8
    model_hash: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Refiner":
        return cls(model=data.get("model"), switch=data.get("switch", 0.8), model_hash=data.get("model_hash"))

    def to_dict(self, public: bool = False) -> dict[str, Any]:
        data = {"model": public_model_name(self.model) if public else self.model, "switch": self.switch}
        _put(data, "model_hash", self.model_hash)
        return data


_INPUT_KEYS = ("init_image", "strength", "mask", "mask_blur", "loras", "controlnets", "refiner")


@dataclass
class GenerationInputs:
    """Everything beyond the prompt and the numbers: GenerationParams.extra, typed."""

    init_image: InitImage | None = None
    mask: Mask | None = None
    loras: list[Lora] = field(default_factory=list)
    controlnets: list[ControlUnit] = field(default_factory=list)
    refiner: Refiner | None = None
    other: dict[str, Any] = field(default_factory=dict)  # keys this version does not know, kept as they are

    @classmethod
    def from_extra(cls, extra: dict[str, Any] | None) -> "GenerationInputs":
        """From GenerationParams.extra (or a row's params less the derived keys); values are not checked."""
        extra = dict(extra or {})
        inputs = cls(other={k: v for k, v in extra.items() if k not in _INPUT_KEYS and k not in DERIVED_PARAMS})
        if "init_image" in extra or "strength" in extra:
            inputs.init_image = InitImage(extra.get("init_image"), extra.get("strength"))
        if "mask" in extra or "mask_blur" in extra:
            inputs.mask = Mask(extra.get("mask"), extra.get("mask_blur"))
        for key, kind, many in (("loras", Lora, True), ("controlnets", ControlUnit, True),
                                ("refiner", Refiner, False)):
            value = extra.get(key)
            if many and isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                setattr(inputs, key, [kind.from_dict(v) for v in value])
            elif not many and isinstance(value, dict) and value:
                inputs.refiner = kind.from_dict(value)
            elif key in extra:
                inputs.other[key] = value  # empty or malformed: kept as given
        return inputs

    def to_extra(self, public: bool = False) -> dict[str, Any]:
        """GenerationParams.extra as stored today; PUBLIC: what a PNG may carry (no local paths)."""
        extra: dict[str, Any] = dict(self.other)
        if self.init_image is not None:
            _put(extra, "init_image", self.init_image.sha256)
            _put(extra, "strength", self.init_image.strength)
        if self.mask is not None:
            _put(extra, "mask", self.mask.sha256)
            _put(extra, "mask_blur", self.mask.blur)
        if self.loras:
            extra["loras"] = [lora.to_dict(public) for lora in self.loras]
        if self.controlnets:
            extra["controlnets"] = [unit.to_dict(public) for unit in self.controlnets]
        if self.refiner is not None:
            extra["refiner"] = self.refiner.to_dict(public)
        return extra

    @property
    def mode(self) -> str:
        """txt2img, img2img (an init image) or inpaint (an init image and a mask)."""
        if self.init_image is not None and self.init_image.sha256:
            return "inpaint" if self.mask is not None and self.mask.sha256 else "img2img"
        return "txt2img"

    def check(self) -> None:
        """Range checks for the settings beyond text-to-image, in diffusers' check_inputs style."""
        init, mask = self.init_image, self.mask
        has_init = init is not None and bool(init.sha256)
        if init is not None and init.strength is not None:
            strength = _number("strength", init.strength)
            if not 0 < strength <= 1:
                raise BadParameter(f"`strength` must be in (0, 1] but is {init.strength}")
            if not has_init:
                raise BadParameter("`strength` applies to img2img and inpainting: give an init image (--init-image)")
        if mask is not None and mask.sha256 and not has_init:
            raise BadParameter("`mask` needs an init image to paint into (--init-image)")
        if mask is not None and mask.blur is not None:
            blur = mask.blur
            if isinstance(blur, bool) or not isinstance(blur, int) or not 0 <= blur <= 64:
                raise BadParameter(f"`mask_blur` must be a whole number from 0 to 64 but is {blur!r}")
        if self.refiner is not None:
            switch = _number("refiner_switch", self.refiner.switch)
            if not 0 < switch < 1:
                raise BadParameter(f"`refiner_switch` must be between 0 and 1 (exclusive) but is {switch}")
        for lora in self.loras:
            scale = _number("lora scale", lora.scale)
            if not -10 <= scale <= 10:
                raise BadParameter(f"`lora` scale must be between -10 and 10 but is {scale} for {lora.name!r}")
        for i, unit in enumerate(self.controlnets):
            self._check_unit(i, unit)

    @staticmethod
    def _check_unit(i: int, unit: ControlUnit) -> None:
        scale = _number("control_scale", unit.scale)
        start = _number("control_start", unit.start)
        end = _number("control_end", unit.end)
        if not 0 <= scale <= 10:
            raise BadParameter(f"`control_scale` must be from 0 to 10 but is {scale} (ControlNet {i})")
        if not 0 <= start < end <= 1:
            raise BadParameter(f"`control_start` and `control_end` must satisfy 0 <= start < end <= 1 but are "
                               f"{start} and {end} (ControlNet {i})")


def check_extra(extra: dict[str, Any]) -> None:
    """GenerationParams.extra's range checks: GenerationInputs.check on the typed inputs."""
    GenerationInputs.from_extra(extra).check()


def recorded_inputs(params: dict[str, Any] | str | None) -> dict[str, Any]:
    """A generation row's `params` without the derived keys: the extra inputs it was made with
    (init image, mask, LoRAs, ControlNets, refiner, strength), as GenerationParams.extra holds them."""
    if isinstance(params, str):
        params = json.loads(params or "{}")
    return {k: v for k, v in (params or {}).items() if k not in DERIVED_PARAMS}


# -- one generated image ----------------------------------------------------------------

# The row's own columns besides what the record holds: where it is stored and how it was made.
ROW_FACTS = ("prompt_id", "experiment_id", "variant", "image_sha256", "image_path", "seconds", "created_at",
             "source_metadata")


@dataclass
class GenerationRecord:
    """What one image was made with: enough to reproduce it, and no timestamps (deterministic)."""

    prompt: PromptText
    model: ModelRef
    sampling: Sampling
    seed: int
    batch: Batch
    inputs: GenerationInputs = field(default_factory=GenerationInputs)
    mode: str = "txt2img"
    prompt_mode: str = "plain"
    flags: list[str] = field(default_factory=list)  # problems seen in the pixels (derived)
    device: str | None = None
    dtype: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    source: str = "promptkit"      # the tool that made the image ("promptkit", "a1111", "comfyui", ...)
    reproducible: bool = True      # False where `reproduce` cannot promise the same pixels
    # Flow-matching families (derived): guidance kind and argument, true_cfg_scale, max_sequence_length,
    # scheduler shift, is_distilled, variant, why a negative prompt was ignored, approximate loading paths.
    family_info: dict[str, Any] = field(default_factory=dict)

    def public(self) -> "GenerationRecord":
        """This record as a PNG carries it: models by name, LoRAs without paths or library state."""
        inputs = GenerationInputs.from_extra(self.inputs.to_extra(public=True))
        return replace(self, model=replace(self.model, path=None), inputs=inputs)

    def extra(self) -> dict[str, Any]:
        """GenerationParams.extra of this image (the inputs, no derived keys)."""
        return self.inputs.to_extra()

    # -- the library row -------------------------------------------------------------
    def to_row(self, **facts: Any) -> dict[str, Any]:
        """The `generations` row: this record's columns, plus FACTS (ROW_FACTS: prompt_id, image_sha256, ...)."""
        unknown = set(facts) - set(ROW_FACTS)
        if unknown:
            raise PromptkitError(f"not a generation row column: {', '.join(sorted(unknown))}")
        params = self.inputs.to_extra()
        if self.flags:
            params["flags"] = list(self.flags)
        params.update(family=self.model.family, mode=self.mode, prompt_mode=self.prompt_mode)
        if self.family_info:
            params["family_info"] = dict(self.family_info)
        row = {key: facts.get(key) for key in ROW_FACTS[:3]}
        row.update(model=self.model.ref, model_hash=self.model.hash, sampler=self.sampling.sampler,
                   steps=self.sampling.steps, cfg=self.sampling.cfg, width=self.sampling.width,
                   height=self.sampling.height, seed=self.seed, noise_device=self.sampling.noise_device,
                   batch=self.batch.to_dict(), params=params)
        row.update({key: facts.get(key) for key in ROW_FACTS[3:5]})
        row.update(device=self.device, dtype=self.dtype, versions=dict(self.versions))
        row.update({key: facts.get(key) for key in ROW_FACTS[5:7]})
        row.update(source=self.source, reproducible=int(bool(self.reproducible)))
        if facts.get("source_metadata") is not None:
            row["source_metadata"] = facts["source_metadata"]
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any], prompt: dict[str, Any]) -> "GenerationRecord":
        """From a `generations` row (JSON columns decoded or not) and its prompts row."""
        def decoded(key: str) -> Any:
            value = row.get(key)
            return json.loads(value) if isinstance(value, str) else value

        params = decoded("params") or {}
        batch = decoded("batch")
        return cls(
            prompt=PromptText.from_row(prompt),
            model=ModelRef.from_ref(row.get("model") or "", row.get("model_hash"), params.get("family")),
            sampling=Sampling(row["sampler"], row["steps"], row["cfg"], row.get("width"), row.get("height"),
                              row.get("noise_device") or "cpu"),
            seed=int(row["seed"]),
            batch=Batch(**batch) if isinstance(batch, dict) else Batch.single(row["seed"]),
            inputs=GenerationInputs.from_extra(recorded_inputs(params)),
            mode=params.get("mode", "txt2img"), prompt_mode=params.get("prompt_mode", "plain"),
            flags=list(params.get("flags") or []), device=row.get("device"), dtype=row.get("dtype"),
            versions=decoded("versions") or {},
            family_info=params.get("family_info") if isinstance(params.get("family_info"), dict) else {},
            source=row.get("source") or "promptkit",
            reproducible=row.get("reproducible") != 0,
        )

    # -- the PNG chunks ---------------------------------------------------------------
    def to_png_meta(self) -> dict[str, Any]:
        """promptkit's JSON chunk: everything needed to reproduce the image, without local paths."""
        extra = self.inputs.to_extra(public=True)
        if self.flags:
            extra["flags"] = list(self.flags)
        prompt, sampling = self.prompt, self.sampling
        return {
            "positive": prompt.positive, "negative": prompt.negative, "template": prompt.template,
            "template_digest": prompt.template_digest, "fields": prompt.fields, "seed": int(self.seed),
            "sampler": sampling.sampler, "steps": sampling.steps, "cfg": sampling.cfg, "width": sampling.width,
            "height": sampling.height, "noise_device": sampling.noise_device, "extra": extra,
            "batch": self.batch.to_dict(), "model": self.model.name, "model_hash": self.model.hash,
            "family": self.model.family, "mode": self.mode, "prompt_mode": self.prompt_mode,
            "device": self.device, "dtype": self.dtype, "versions": dict(self.versions),
            **({"family_info": dict(self.family_info)} if self.family_info else {}),
        }

    @classmethod
    def from_png_meta(cls, meta: dict[str, Any]) -> "GenerationRecord":
        """From promptkit's JSON chunk (or an older PNG's, which named local paths: kept as they were)."""
        extra = meta.get("extra") if isinstance(meta.get("extra"), dict) else {}
        batch = meta.get("batch")
        seed = int(meta.get("seed") or 0)
        return cls(
            prompt=PromptText.from_row(meta),
            model=ModelRef(name=str(meta.get("model_name") or meta.get("model") or ""), hash=meta.get("model_hash"),
                           family=meta.get("family")),
            sampling=Sampling(meta.get("sampler"), meta.get("steps"), meta.get("cfg"), meta.get("width"),
                              meta.get("height"), meta.get("noise_device") or "cpu"),
            seed=seed,
            batch=Batch(**batch) if isinstance(batch, dict) else Batch.single(seed),
            inputs=GenerationInputs.from_extra(extra),
            mode=meta.get("mode") or "txt2img", prompt_mode=meta.get("prompt_mode") or "plain",
            flags=list(extra.get("flags") or []), device=meta.get("device"), dtype=meta.get("dtype"),
            versions=meta.get("versions") if isinstance(meta.get("versions"), dict) else {},
            family_info=meta.get("family_info") if isinstance(meta.get("family_info"), dict) else {},
        )

    def infotext(self) -> str:
        """A1111's `parameters` text (LoRAs as `<lora:NAME:SCALE>` in the prompt)."""
        from .a1111 import write_infotext

        return write_infotext(self)

    def png_chunks(self) -> dict[str, str]:
        """The PNG text chunks, in order: A1111's `parameters`, then promptkit's JSON."""
        promptkit_json = json.dumps(self.to_png_meta(), sort_keys=True, ensure_ascii=False)
        try:
            promptkit_json.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise PromptkitError(f"image metadata holds {promptkit_json[exc.start]!r}, which a PNG text chunk "
                                 "cannot carry") from None
        return {PARAMETERS_KEY: self.infotext(), PROMPTKIT_KEY: promptkit_json}

    @classmethod
    def from_png_chunks(cls, chunks: dict[str, str]) -> "GenerationRecord":
        """From a PNG's text chunks: promptkit's JSON when readable, else A1111's text."""
        if PROMPTKIT_KEY in chunks:
            try:
                meta = json.loads(chunks[PROMPTKIT_KEY])
            except ValueError:
                meta = None
            if isinstance(meta, dict) and isinstance(meta.get("positive"), str):
                return cls.from_png_meta(meta)
        if PARAMETERS_KEY in chunks:
            return cls.from_infotext(chunks[PARAMETERS_KEY])
        raise PromptkitError("the PNG has neither a `promptkit` nor a `parameters` text chunk")

    @classmethod
    def from_infotext(cls, text: str) -> "GenerationRecord":
        """What A1111's text says (read with A1111's grammar): LoRA scales from the prompt's tags,
        hashes as A1111 writes them (12-digit LoRA prefixes); no template, device or input images."""
        from .a1111 import lora_tag_scales, read_infotext

        got = read_infotext(text)
        scales = lora_tag_scales(got["positive"])
        loras = [Lora(name=l["name"], sha256=l["sha256"], scale=scales.get(l["name"], 1.0))
                 for l in got.get("loras") or []]
        units = [ControlUnit(model=u["model"], module=u["module"], scale=u.get("scale", 1.0),
                             start=u.get("start", 0.0), end=u.get("end", 1.0), model_hash=u.get("model_hash"))
                 for u in got.get("controlnets") or []]
        refiner = Refiner.from_dict(got["refiner"]) if got.get("refiner") else None
        inputs = GenerationInputs(loras=loras, controlnets=units, refiner=refiner)
        if "strength" in got:
            inputs.init_image = InitImage(None, got["strength"])
        if "mask_blur" in got:
            inputs.mask = Mask(None, got["mask_blur"])
        if got.get("true_cfg") not in (None, 1.0):
            inputs.other["true_cfg_scale"] = got["true_cfg"]
        seed = got.get("seed", 0)
        version = got["settings"].get("Version", "")
        return cls(
            prompt=PromptText(got["positive"], got["negative"]),
            model=ModelRef(name=got.get("model", ""), hash=got.get("model_hash"),
                           family="flux" if "Distilled CFG Scale" in got["settings"] else None),
            sampling=Sampling(got.get("sampler"), got.get("steps"), got.get("cfg"), got.get("width"),
                              got.get("height"), got.get("noise_device", "cpu")),
            seed=seed, batch=Batch.single(seed), inputs=inputs,
            versions={"promptkit": version.removeprefix("promptkit ")} if version.startswith("promptkit") else {},
        )


# -- jobs for the warm engine -----------------------------------------------------------

JOB_KINDS = ("generate", "ab_run", "check")


@dataclass
class JobRequest:
    """A job for the warm engine (or this process), JSON-able with to_dict / from_dict.

    Build one with JobRequest.generate(...), JobRequest.ab_run(...) or JobRequest.check(...).
    """

    kind: str
    model: str
    engine_options: dict[str, Any] = field(default_factory=dict)
    db: str | None = None
    prompt_id: int | None = None  # generate
    params: Any = None  # generate: a GenerationParams
    seeds: list[int] = field(default_factory=list)
    batch_size: int | None = None  # None: chosen by the engine from free memory
    profile: bool = False
    name: str | None = None  # ab_run: the experiment
    lora_dir: str | None = None  # ab_run
    extra: dict[str, Any] | None = None  # check: the inputs the loaded model vets

    def __post_init__(self) -> None:
        if self.kind not in JOB_KINDS:
            raise PromptkitError(f"unknown job kind {self.kind!r}")
        if isinstance(self.params, dict):
            from .params import GenerationParams

            self.params = GenerationParams(**self.params)

    @classmethod
    def generate(cls, db: str, model: str, prompt_id: int, params: Any, seeds: list[int],
                 batch_size: int | None = 1, engine_options: dict[str, Any] | None = None,
                 profile: bool = False) -> "JobRequest":
        return cls(kind="generate", db=str(db), model=model, engine_options=dict(engine_options or {}),
                   prompt_id=int(prompt_id), params=params, seeds=[int(s) for s in seeds], batch_size=batch_size,
                   profile=profile)

    @classmethod
    def ab_run(cls, db: str, model: str, name: str, batch_size: int | None = None,
               engine_options: dict[str, Any] | None = None, profile: bool = False,
               lora_dir: str | None = None) -> "JobRequest":
        return cls(kind="ab_run", db=str(db), model=model, engine_options=dict(engine_options or {}), name=name,
                   batch_size=batch_size, profile=profile, lora_dir=lora_dir)

    @classmethod
    def check(cls, model: str, extra: dict[str, Any], engine_options: dict[str, Any] | None = None) -> "JobRequest":
        return cls(kind="check", model=model, engine_options=dict(engine_options or {}), extra=dict(extra))

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able job the worker's socket carries."""
        data = asdict(self)
        data["params"] = self.params.to_dict() if self.params is not None else None
        return {k: v for k, v in data.items() if v is not None}

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> "JobRequest":
        if not isinstance(spec, dict):
            raise PromptkitError("a job must be a JSON object")
        if spec.get("kind") not in JOB_KINDS:
            raise PromptkitError(f"unknown job kind {spec.get('kind')!r}")
        unknown = set(spec) - set(cls.__dataclass_fields__)
        if unknown:
            raise PromptkitError(f"unknown job field(s): {', '.join(sorted(unknown))}")
        if not spec.get("model"):
            raise PromptkitError("a job needs `model`")
        return cls(**{k: v for k, v in spec.items() if v is not None})
