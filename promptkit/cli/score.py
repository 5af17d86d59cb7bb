"""`promptkit score` and `promptkit judges`: automatic judges; parse, call `promptkit.service.scores`, print."""

from __future__ import annotations

from typing import Any

import click

from .options import emit, json_option, lazy_module, open_library

service = lazy_module("promptkit.service.scores")


@click.command("score")
@click.argument("targets", nargs=-1, required=True, metavar="TARGET...")
@click.option("--judge", required=True, help="The judge: clip, pickscore, fid or is (see `promptkit judges`).")
@click.option("--model", default=None, help="The judge's model: a CLIP model (hub id or local folder); "
                                            "default: the judge's own. For fid and is: CLIP features instead of "
                                            "Inception.")
@click.option("--reference", type=click.Path(), default=None,
              help="FID: a folder of reference images (without it, an experiment's variants are compared).")
@click.option("--force", is_flag=True, help="Recompute scores already stored.")
@click.option("--device", default="cpu", show_default=True, help="Where the judge runs: cpu, cuda, mps.")
@json_option
@click.pass_context
def score(ctx, targets, judge, model, reference, force, device, as_json) -> None:
    """Score images with an automatic judge: TARGET is an experiment (name or experiment:ID), a prompt
    (name or prompt:ID) or generation ids (12, 12,15 or 12-20).

    Per-image judges (clip, pickscore) store each score once; a second run reuses them unless --force.
    Set measures (fid, is) are computed per variant and printed, with the number of images.
    """
    with open_library(ctx, create=False) as lib:
        result = service.score(lib, list(targets), judge, model=model, force=force, reference=reference,
                               device=device)
    emit(result, as_json, "\n".join(_lines(result)))


def _lines(result: dict[str, Any]) -> list[str]:
    if "sets" in result:
        lines = [f"{result['judge']} ({result['model']}):"]
        for s in result["sets"]:
            against = f" vs {s['against']}" if s.get("against") else ""
            spread = f" ± {s['std']:.3g}" if "std" in s else ""
            lines.append(f"  {s['set']}{against}: {s['value']:.4g}{spread} (N = {s['n']})")
            if s.get("warning"):
                lines.append(f"    warning: {s['warning']}")
        return lines
    lines = [f"{result['judge']} ({result['model']}): {result['images']} images, {result['computed']} computed, "
             f"{result['reused']} already stored"]
    for label, row in result["by_variant"].items():
        lines.append(f"  {label}: mean {row['mean']:.4g} over {row['images']} images")
    if not result["by_variant"]:
        lines += [f"  gen {s['generation_id']}: {s['value']:.4g}" for s in result["scores"]]
    return lines


@click.command("judges")
@json_option
def judges(as_json) -> None:
    """List the automatic judges, what each needs, and whether it can run here."""
    rows = service.list_judges()
    text = []
    for j in rows:
        state = "ready" if j["available"] else f"unavailable: {j['reason']}"
        text.append(f"{j['name']:<10} {j['title']} ({j['kind']}); default model {j['default_model'] or '-'}")
        text.append(f"           needs {j['needs']}; {state}")
        text.append(f"           {j['definition']}")
    emit(rows, as_json, "\n".join(text))


COMMANDS = [score, judges]
