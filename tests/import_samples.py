"""Images written in each tool's published layout, for the import tests (16-64 px, no model needed).

Each writer follows the tool's own code: A1111 `modules/images.py` (PNG `parameters` via PngInfo,
JPEG/WebP EXIF UserComment through piexif's `UNICODE` UTF-16 form), sd_webui_stealth_pnginfo
(alpha/RGB low bits), ComfyUI `nodes.py` SaveImage (`prompt` and `workflow` tEXt JSON), InvokeAI
(`invokeai_metadata`, `sd-metadata` + `Dream`, `Dream`), Fooocus `modules/meta_parser.py`
(`parameters` + `fooocus_scheme`), SwarmUI (`parameters` JSON with `sui_image_params`) and
NovelAI (`Title`, `Description`, `Software`, `Source`, `Comment`).
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

from PIL import Image


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def text_chunk(key: str, text: str, itxt: bool = False, raw: bytes | None = None) -> bytes:
    """A tEXt chunk (Latin-1), or an iTXt chunk (UTF-8, or RAW bytes as given)."""
    if itxt or raw is not None:
        body = key.encode("latin-1") + b"\0\0\0\0\0" + (raw if raw is not None else text.encode("utf-8"))
        return _chunk(b"iTXt", body)
    return _chunk(b"tEXt", key.encode("latin-1") + b"\0" + text.encode("latin-1"))


def base_png(size=(32, 32), mode="RGB", color=(90, 120, 150), image=None) -> bytes:
    image = image or Image.new(mode, size, color if mode == "RGB" else (*color, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def png_bytes(chunks: dict[str, str], after_idat: bool = False, itxt: bool = False, **base) -> bytes:
    """A PNG with CHUNKS as text chunks, before the image data (as Pillow writes them) or after it."""
    data = base_png(**base)
    extra = b"".join(text_chunk(k, v, itxt=itxt or any(ord(c) > 255 for c in v)) for k, v in chunks.items())
    if after_idat:
        end = data.rindex(b"IEND") - 4
        return data[:end] + extra + data[end:]
    ihdr_end = 8 + 8 + 13 + 4
    return data[:ihdr_end] + extra + data[ihdr_end:]


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def exif_image(text: str, fmt: str = "JPEG", encoding: str = "utf-16-be", maker_note: str | None = None,
               size=(32, 32), color=(40, 80, 120)) -> bytes:
    """A JPEG/WebP whose EXIF UserComment is TEXT as piexif.helper.UserComment.dump(..., "unicode") writes it."""
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + text.encode(encoding)
    if maker_note is not None:
        exif.get_ifd(0x8769)[0x927C] = maker_note.encode("ascii")
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format=fmt, exif=exif.tobytes())
    return buffer.getvalue()


def stealth_png(text: str, mode: str = "alpha", compressed: bool = True, size=(64, 64)) -> bytes:
    from promptkit.importers.container import write_stealth

    image = write_stealth(Image.new("RGBA", size, (200, 100, 50, 255)), text, mode=mode, compressed=compressed)
    return base_png(image=image)


# -- the tools' metadata ------------------------------------------------------------------

A1111_TEXT = (
    "a lighthouse on a cliff, (stormy sea:1.2) <lora:watercolorStyle:0.7>\n"
    "Negative prompt: blurry, lowres\n"
    "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 1234567890, Size: 512x768, "
    "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, VAE: vae-ft-mse-840000, Denoising strength: 0.45, "
    "Clip skip: 2, Hires upscale: 2, Hires steps: 10, Hires upscaler: Latent, "
    "Lora hashes: \"watercolorStyle: 0123456789ab\", "
    "ControlNet 0: \"Module: canny, Model: control_v11p_sd15_canny [d14c016b], Weight: 0.8, Guidance Start: 0.1, "
    "Guidance End: 0.9\", Version: v1.10.1"
)
FORGE_TEXT = ("a red fox in snow\nNegative prompt: cartoon\nSteps: 20, Sampler: Euler, Schedule type: Simple, "
              "CFG scale: 1, Distilled CFG Scale: 3.5, Seed: 42, Size: 64x64, Model hash: abcdef1234, "
              "Model: flux1-dev-bnb-nf4-v2, Version: f2.0.1v1.10.1-previous-313-g8a042934")
CIVITAI_TEXT = ('portrait of a knight\nNegative prompt: bad hands\nSteps: 30, Sampler: Euler a, CFG scale: 7, '
                'Seed: 99, Size: 512x512, Clip skip: 2, Hashes: {"model": "7f96a1a9ca", "lora:knightArmor": '
                '"aabbccddeeff"}, Civitai resources: [{"type":"checkpoint","modelVersionId":1},{"type":"lora",'
                '"weight":0.6,"modelName":"knightArmor","modelVersionId":2}], Civitai metadata: {}')


def comfy_graph() -> dict:
    """The API graph of ComfyUI's default workflow plus a LoRA, CLIP skip and a primitive text node."""
    return {
        "3": {"class_type": "KSampler", "inputs": {"seed": 156680208700286, "steps": 20, "cfg": 8.0,
                                                    "sampler_name": "dpmpp_2m", "scheduler": "karras", "denoise": 1.0,
                                                    "model": ["10", 0], "positive": ["6", 0], "negative": ["7", 0],
                                                    "latent_image": ["5", 0]}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 640, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": ["12", 0], "clip": ["11", 0]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "text, watermark", "clip": ["11", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
        "10": {"class_type": "LoraLoader", "inputs": {"lora_name": "detail.safetensors", "strength_model": 0.6,
                                                      "strength_clip": 0.5, "model": ["4", 0], "clip": ["4", 1]}},
        "11": {"class_type": "CLIPSetLastLayer", "inputs": {"stop_at_clip_layer": -2, "clip": ["10", 1]}},
        "12": {"class_type": "PrimitiveString", "inputs": {"value": "beautiful scenery nature glass bottle"}},
    }


INVOKE_V5 = {
    "generation_mode": "txt2img", "positive_prompt": "a castle in the clouds", "negative_prompt": "ugly",
    "width": 512, "height": 768, "seed": 3141592, "rand_device": "cpu", "cfg_scale": 7.5,
    "cfg_rescale_multiplier": 0, "steps": 30, "scheduler": "dpmpp_2m_k", "clip_skip": 1,
    "model": {"key": "k1", "hash": "blake3:abc", "name": "Dreamshaper 8", "base": "sd-1", "type": "main"},
    "loras": [{"model": {"key": "k2", "hash": "blake3:def", "name": "add_detail", "base": "sd-1", "type": "lora"},
               "weight": 0.75}],
    "controlnets": [], "app_version": "5.4.2",
}
INVOKE_V2 = {"model": "stable diffusion", "model_weights": "stable-diffusion-1.5", "model_hash": "cc6cb27103",
             "app_id": "invoke-ai/InvokeAI", "app_version": "2.2.5",
             "image": {"prompt": [{"prompt": "a cabin in the woods [dark, gloomy]", "weight": 1.0}], "steps": 50,
                       "cfg_scale": 7.5, "threshold": 0, "perlin": 0, "height": 512, "width": 512, "seed": 12345,
                       "seamless": False, "hires_fix": False, "type": "txt2img", "postprocessing": None,
                       "sampler": "k_lms", "variations": []}}
DREAM_V1 = '"a cabin in the woods [dark, gloomy]" -s 50 -S 12345 -W 512 -H 512 -C 7.5 -A k_lms'
FOOOCUS_JSON = {"adm_guidance": "(1.5, 0.8, 0.3)", "base_model": "juggernautXL_v8Rundiffusion",
                "base_model_hash": "aeb7e9e689", "clip_skip": 2, "full_negative_prompt": ["unrealistic"],
                "full_prompt": ["a cat, cinematic"], "guidance_scale": 4.0, "loras": [["sd_xl_offset", 0.1, "4852686128"]],
                "negative_prompt": "unrealistic", "performance": "Speed", "prompt": "a cat", "refiner_model": "None",
                "refiner_switch": 0.5, "resolution": "(1152, 896)", "sampler": "dpmpp_2m_sde_gpu",
                "scheduler": "karras", "seed": "1234", "sharpness": 2.0, "steps": 30,
                "styles": "['Fooocus V2', 'Fooocus Enhance']", "vae": "Default (model)", "version": "Fooocus v2.5.5"}
FOOOCUS_A1111 = ("a cat, cinematic, highly detailed\nNegative prompt: unrealistic, saturated\n"
                 'Steps: 30, Sampler: DPM++ 2M SDE Karras, Seed: 1234, Size: 1152x896, CFG scale: 4, Sharpness: 2, '
                 'ADM Guidance: "(1.5, 0.8, 0.3)", Model: juggernautXL_v8Rundiffusion, Model hash: aeb7e9e689, '
                 'Performance: Speed, Scheduler: karras, VAE: Default (model), Raw prompt: a cat, '
                 'Raw negative prompt: unrealistic, Lora hashes: "sd_xl_offset: 4852686128", '
                 'Lora weights: "sd_xl_offset: 0.1", Version: Fooocus v2.5.5')
SWARM = {"sui_image_params": {"prompt": "a robot reading a book", "negativeprompt": "blurry", "model": "OfficialStableDiffusion/sd_xl_base_1.0",
                              "seed": 1717, "steps": 25, "cfgscale": 6.0, "aspectratio": "1:1", "width": 1024,
                              "height": 1024, "sampler": "euler_ancestral", "scheduler": "normal",
                              "loras": ["pixel-art-xl"], "loraweights": ["0.8"], "clipstopatlayer": -2,
                              "swarm_version": "0.9.5.0"},
         "sui_extra_data": {"date": "2025-01-01", "generation_time": "1.2 sec"},
         "sui_models": [{"name": "sd_xl_base_1.0.safetensors", "param": "model", "hash": "0x31e35c80fc"}]}
NOVELAI_COMMENT = {"prompt": "1girl, cherry blossoms, best quality", "steps": 28, "height": 832, "width": 1216,
                   "scale": 5.0, "uncond_scale": 0.0, "cfg_rescale": 0.0, "seed": 2718281828, "n_samples": 1,
                   "noise_schedule": "karras", "sampler": "k_euler_ancestral", "uc": "lowres, bad anatomy",
                   "request_type": "PromptGenerateRequest", "version": 1}


def novelai_chunks() -> dict[str, str]:
    return {"Title": "AI generated image", "Description": NOVELAI_COMMENT["prompt"], "Software": "NovelAI",
            "Source": "NovelAI Diffusion V4.5 4BDE2A90", "Generation time": "3.1",
            "Comment": json.dumps(NOVELAI_COMMENT)}


def write_each_tool(folder: Path) -> dict[str, int]:
    """One folder with images from every tool (PNG, JPEG, WebP, stealth); returns the count per tool."""
    graph = comfy_graph()
    files = {
        "a1111/before.png": png_bytes({"parameters": A1111_TEXT}),
        "a1111/after.png": png_bytes({"parameters": A1111_TEXT.replace("Seed: 1234567890", "Seed: 7")}, after_idat=True),
        "a1111/photo.jpg": exif_image(A1111_TEXT.replace("Seed: 1234567890", "Seed: 8")),
        "a1111/photo.webp": exif_image(A1111_TEXT.replace("Seed: 1234567890", "Seed: 9"), fmt="WEBP"),
        "a1111/stealth.png": stealth_png(A1111_TEXT.replace("Seed: 1234567890", "Seed: 10")),
        "forge/fox.png": png_bytes({"parameters": FORGE_TEXT}),
        "civitai/knight.png": png_bytes({"parameters": CIVITAI_TEXT}),
        "comfy/ComfyUI_00001_.png": png_bytes({"prompt": json.dumps(graph), "workflow": json.dumps({"nodes": []})}),
        "invoke/v5.png": png_bytes({"invokeai_metadata": json.dumps(INVOKE_V5)}),
        "invoke/v2.png": png_bytes({"sd-metadata": json.dumps(INVOKE_V2), "Dream": DREAM_V1}),
        "invoke/v1.png": png_bytes({"Dream": DREAM_V1}, color=(1, 2, 3)),
        "fooocus/json.png": png_bytes({"parameters": json.dumps(FOOOCUS_JSON), "fooocus_scheme": "fooocus"}),
        "fooocus/a1111.png": png_bytes({"parameters": FOOOCUS_A1111, "fooocus_scheme": "a1111"}),
        "swarm/robot.png": png_bytes({"parameters": json.dumps(SWARM)}),
        "novelai/girl.png": png_bytes(novelai_chunks()),
    }
    counts: dict[str, int] = {}
    for name, data in files.items():
        write(folder / name, data)
    for tool, n in (("a1111", 5), ("forge", 1), ("civitai", 1), ("comfyui", 1), ("invokeai", 3), ("fooocus", 2),
                    ("swarmui", 1), ("novelai", 1)):
        counts[tool] = n
    return counts
