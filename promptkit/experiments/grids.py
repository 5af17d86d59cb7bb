"""X/Y plots: two axes (parameters, prompt fields or seeds), stored as an experiment with one
variant per cell."""

from __future__ import annotations

import itertools
import re
from typing import Any

from ..errors import BadParameter
from ..library import Library
from ..params import GenerationParams
from .runs import create_experiment
from .variants import VariantSpec, cell_overrides, check_overrides, parse_refiner_value

# -- X/Y grids ---------------------------------------------------------------------

PARAM_AXES = {"cfg": float, "steps": int, "sampler": str, "width": int, "height": int, "model": str,
              "strength": float, "lora_scale": float, "control_scale": float, "refiner": parse_refiner_value,
              "refiner_switch": float, "true_cfg_scale": float, "shift": float}
FIELD_AXES = ("subject", "action", "environment", "style", "quality")


NO_AXIS: dict[str, Any] = {"name": "", "values": [None]}  # the Y axis of a one-axis plot


def check_axes(params: GenerationParams, x: dict[str, Any], y: dict[str, Any] | None, model: str | None) -> None:
    """Every cell of an X/Y plot's parameter axes, checked as `check_overrides` does; Y may be None."""
    y = y or NO_AXIS
    xs = x["values"] if x["name"] in PARAM_AXES else [None]
    ys = y["values"] if y["name"] in PARAM_AXES else [None]
    for xv, yv in itertools.product(xs, ys):
        check_overrides(params, cell_overrides({a["name"]: v for a, v in ((x, xv), (y, yv)) if v is not None}), model)


def parse_axis(text: str) -> dict[str, Any]:
    """`cfg=3,7,11`, `sampler=Euler,DDIM`, `style=watercolor,sketch`, `seed=1-4`."""
    from ..params import canonical_sampler, parse_seeds

    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not raw.strip():
        raise BadParameter(f"axis {text!r} should look like NAME=V1,V2,…")
    if name == "seed":
        values: list[Any] = parse_seeds(raw)
    elif name in PARAM_AXES:
        try:
            values = [PARAM_AXES[name](v.strip()) for v in raw.split(",") if v.strip()]
        except ValueError:
            raise BadParameter(f"axis {name}: {raw!r} has a value that is not a number") from None
        if name == "sampler":
            values = [canonical_sampler(v) for v in values]
    elif name in FIELD_AXES:
        values = [v.strip() for v in raw.split(",") if v.strip()]
    else:
        raise BadParameter(f"unknown axis {name!r}; choose from seed, {', '.join(PARAM_AXES)}, "
                           f"{', '.join(FIELD_AXES)}")
    if len(set(map(str, values))) != len(values) or not values:
        raise BadParameter(f"axis {name} needs distinct values")
    return {"name": name, "values": values}


def _axis_label(name: str, value: Any) -> str:
    """A cell's part of a readable label: `cfg 3`, `Euler a`, `style cinematic+bokeh`, `model tiny-sd`."""
    if name in ("model", "refiner"):
        value = str(value).rstrip("/").split("/")[-1]
    if isinstance(value, float):
        value = f"{value:g}"
    text = str(value) if name == "sampler" else f"{name.replace('_', ' ')} {value}"
    return " ".join(re.sub(r"[:=,]+", "-", text).split())[:30].strip()


def cell_label(parts: list[tuple[str, Any]]) -> str:
    """The variant label of an X/Y cell from its (axis name, value)s: `cfg 3 · Euler a`."""
    return " · ".join(_axis_label(name, value) for name, value in parts if value is not None)


def create_xy_experiment(library: Library, name: str, prompt_ref: str, x: dict[str, Any], y: dict[str, Any] | None,
                         seeds: list[int], params: GenerationParams, model: str | None = None,
                         templates_dir: str | None = None, extra: dict[str, Any] | None = None) -> int:
    """An X/Y plot over one axis or two, stored as an experiment: one variant per (x, y) cell; Y may be None."""
    from ..templates import Fields, PromptBuilder

    stored_y, y = y, y or NO_AXIS
    if x["name"] == y["name"]:
        raise BadParameter("the X and Y axes must differ")
    seed_axis = "x" if x["name"] == "seed" else "y" if y["name"] == "seed" else None
    if seed_axis:
        seeds = (x if seed_axis == "x" else y)["values"]
    base = library.get_prompt(prompt_ref)
    builder = PromptBuilder(templates_dir)
    xs = [None] if seed_axis == "x" else x["values"]
    ys = [None] if seed_axis == "y" else y["values"]
    # Render every field-axis prompt first: a bad preset must fail before anything is written.
    plans = []
    for yv in ys:
        for xv in xs:
            overrides: dict[str, Any] = {}
            fields = dict(base["fields"] or {})
            changed = False
            for axis, value in ((x, xv), (y, yv)):
                if value is None:
                    continue
                if axis["name"] in PARAM_AXES:
                    overrides[axis["name"]] = value
                else:
                    changed = True
                    fields[axis["name"]] = (value.split("+") if axis["name"] in ("style", "quality") else value)
            overrides = cell_overrides(overrides)
            prompt = builder.render(Fields.from_dict(fields), base["template"] or "default") if changed else None
            label = cell_label([(x["name"], xv), (y["name"], yv)])
            key = f"{'' if xv is None else xv}|{'' if yv is None else yv}"
            plans.append((label, key, overrides, prompt))
    labels = {key: label for label, key, _overrides, _prompt in plans}

    def create(prompt_ids: list[int]) -> int:
        specs = [VariantSpec(label, str(prompt_id), overrides)
                 for (label, _key, overrides, _prompt), prompt_id in zip(plans, prompt_ids)]
        return create_experiment(library, name, specs, seeds, params, model,
                                 extra={**(extra or {}), "xy": {"x": x, "y": stored_y, "labels": labels}})

    return library.create_experiment_with_prompts(base["id"], [prompt for *_rest, prompt in plans], ["xy", name],
                                                  create)
