"""Automatic judges: score images, measure sets (FID, IS), and set each judge beside the person's votes.

`score` resolves a target (an experiment, a prompt, generation ids) to images, computes each
missing score once (a stored score is reused while its judge model's hash is unchanged, unless
`force`), and stores it; FID and Inception Score are measured per variant and printed, not
stored. `experiment_judges` is the `judges` section of `ab stats`: agreement with the person's
votes and stars, the judge's own verdict, and the prediction-powered verdict beside the
human-only one. Nothing here imports torch until a model has to run.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ..errors import BadParameter, NotFound

if TYPE_CHECKING:
    from ..library import Library

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}
_IDS = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")


def list_judges(available_only: bool = False) -> list[dict[str, Any]]:
    """Every judge: name, kind (image or set), default model, what it needs, whether it can run here.

    :param available_only: leave out the judges that cannot run here (their `reason` says why).
    """
    from ..judges import list_judges as listing

    return [j for j in listing() if j["available"] or not available_only]


# -- targets ------------------------------------------------------------------------------


def _parse_ids(text: str) -> list[int]:
    ids: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        ids.extend(range(int(low), int(high or low) + 1))
    return ids


def resolve_target(library: Library, targets: Sequence[str] | str) -> dict[str, Any]:
    """The images TARGETS name: an experiment (name, or `experiment:ID`), a prompt (name, or `prompt:ID`),
    or generation ids ("12", "12,15", "12-20"). Returns {"generations": [...], "experiment": dict or None}."""
    from ..experiments import get_experiment

    targets = [targets] if isinstance(targets, str) else list(targets)
    if not targets:
        raise BadParameter("no TARGET given: name an experiment, a prompt or generation ids")
    ids: list[int] = []
    experiment = None
    for target in targets:
        text = str(target).strip()
        kind, _, ref = text.partition(":") if text.split(":", 1)[0] in ("experiment", "prompt") else ("", "", text)
        if not kind and _IDS.match(text):
            wanted = _parse_ids(text)
            found = [g["id"] for g in library.generations_by_ids(wanted)]
            if missing := sorted(set(wanted) - set(found)):
                raise NotFound(f"no generation {missing[0]} (TARGET {text!r})")
            ids.extend(found)
            continue
        if kind in ("", "experiment"):
            try:
                experiment = get_experiment(library, ref)
                ids.extend(library.generation_ids_for(experiment_id=experiment["id"]))
                continue
            except NotFound:
                if kind == "experiment":
                    raise
        try:
            prompt = library.get_prompt(ref)
        except NotFound:
            raise NotFound(f"TARGET {text!r} is not an experiment, a prompt or generation ids") from None
        ids.extend(library.generation_ids_for(prompt_id=prompt["id"]))
    generations = library.generations_by_ids(list(dict.fromkeys(ids)))
    if not generations:
        raise BadParameter(f"TARGET {' '.join(targets)!r} has no images to score yet")
    return {"generations": generations, "experiment": experiment if len(targets) == 1 else None}


# -- scoring ------------------------------------------------------------------------------


def score(library: Library, targets: Sequence[str] | str, judge: str, *, model: str | None = None,
          force: bool = False, reference: str | None = None, device: str = "cpu",
          batch_size: int = 16) -> dict[str, Any]:
    """Score the images of TARGETS with JUDGE; image scores are stored, set measures returned.

    :param judge: a name from `list_judges()` (clip, pickscore, fid, is).
    :param model: the judge's model (a CLIP model: hub id or local folder); default: the judge's.
    :param force: recompute stored scores. :param reference: a folder of reference images (FID).
    :returns: judge, model, and for image judges: images, computed, reused, scores and means per variant;
        for set judges: a `sets` list of measured values.
    """
    from ..judges import get_judge, require

    spec = get_judge(judge)
    require(spec)
    if spec.kind == "set":
        return measure_sets(library, targets, spec.name, model=model, reference=reference)
    from ..judges.clip import check_clip_model, model_hash

    model = model or spec.default_model
    check_clip_model(model)
    found = resolve_target(library, targets)
    generations = found["generations"]
    ids = [g["id"] for g in generations]
    fingerprint = model_hash(model)
    stored = library.stored_scores(ids, spec.name, model)
    todo = [g for g in generations if force or g["id"] not in stored
            or (fingerprint and stored[g["id"]]["model_hash"] not in ("", fingerprint))]
    if todo:
        values = _run_image_judge(library, spec, model, todo, device, batch_size)
        library.save_scores(spec.name, model, fingerprint, values)
        stored = library.stored_scores(ids, spec.name, model)
    scores = [{"generation_id": g["id"], "variant": g["variant"], "seed": g["seed"],
               "value": stored[g["id"]]["value"]} for g in generations]
    return {"judge": spec.name, "model": model, "model_hash": fingerprint, "images": len(ids),
            "computed": len(todo), "reused": len(ids) - len(todo), "scores": scores,
            "by_variant": _means_by_variant(scores)}


def _run_image_judge(library: Library, spec, model: str, generations: list[dict[str, Any]], device: str,
                     batch_size: int) -> dict[int, float]:
    from PIL import Image

    from ..judges.clip import ClipScorer

    processor = spec.processor if model == spec.default_model else None
    scorer = ClipScorer(model, processor=processor, scale=spec.name, device=device)
    images = []
    for g in generations:
        with Image.open(library.generation_image(g["id"])) as picture:
            images.append(picture.convert("RGB"))
    values = scorer.score(images, [g["positive"] for g in generations], batch_size=batch_size)
    return {g["id"]: value for g, value in zip(generations, values)}


def _means_by_variant(scores: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[float]] = {}
    for s in scores:
        if s["variant"]:
            groups.setdefault(s["variant"], []).append(s["value"])
    return {label: {"mean": sum(v) / len(v), "images": len(v)} for label, v in groups.items()}


# -- set measures -------------------------------------------------------------------------


def _folder_images(folder: str) -> list[Any]:
    from PIL import Image

    path = Path(folder).expanduser()
    if not path.is_dir():
        raise BadParameter(f"--reference {folder!r} is not a folder of images")
    images = []
    for file in sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        with Image.open(file) as picture:
            images.append(picture.convert("RGB"))
    return images


def _grouped_images(library: Library, generations: list[dict[str, Any]], by_variant: bool) -> dict[str, list]:
    from PIL import Image

    groups: dict[str, list] = {}
    for g in generations:
        with Image.open(library.generation_image(g["id"])) as picture:
            groups.setdefault(g["variant"] if by_variant else "all", []).append(picture.convert("RGB"))
    return groups


def measure_sets(library: Library, targets: Sequence[str] | str, judge: str, *, model: str | None = None,
                 reference: str | None = None, feature=None) -> dict[str, Any]:
    """FID or Inception Score per variant (an experiment) or over all the target's images.

    FID compares each set with the `reference` folder, or, without one, the variants of an experiment
    with each other; fewer than 2 images in a set, or no reference and no second variant, is an error.
    :param feature: a torch module to use as the feature network (tests pass a tiny one).
    """
    from ..judges import sets

    if model is not None:
        from ..judges.clip import check_clip_model

        check_clip_model(model)
    if judge == "fid" and reference is None and not _is_experiment(library, targets):
        raise BadParameter("--judge fid needs --reference DIR (a folder of images) or an experiment with two or "
                           "more variants to compare")
    ref_images = _folder_images(reference) if reference is not None else None
    if ref_images is not None and len(ref_images) < 2:
        raise BadParameter(f"--judge fid needs at least 2 images in --reference {reference!r}; it has {len(ref_images)}")
    found = resolve_target(library, targets)
    groups = _grouped_images(library, found["generations"], found["experiment"] is not None)
    if judge == "fid" and ref_images is None and len(groups) < 2:
        raise BadParameter("--judge fid without --reference compares variants, and this experiment has images "
                           "of only one")
    for label, images in groups.items():
        if len(images) < 2:
            raise BadParameter(f"--judge {judge} needs at least 2 images per set; {label!r} has {len(images)}")
    if feature is None and model is not None:
        feature = sets.clip_features(model)  # loaded once for every set
    results = []
    labels = list(groups)
    if judge == "is":
        for label in labels:
            results.append({"set": label, **sets.inception_score(groups[label], model=model, feature=feature)})
    elif ref_images is not None:
        for label in labels:
            results.append({"set": label, "against": "reference",
                            **sets.fid(ref_images, groups[label], model=model, feature=feature)})
    else:
        for i, a in enumerate(labels):
            for b in labels[i + 1:]:
                results.append({"set": b, "against": a, **sets.fid(groups[a], groups[b], model=model, feature=feature)})
    return {"judge": judge, "model": model or "inception-v3 (torch-fidelity)", "reference": reference,
            "sets": results}


def _is_experiment(library: Library, targets: Sequence[str] | str) -> bool:
    from ..experiments import get_experiment

    targets = [targets] if isinstance(targets, str) else list(targets)
    if len(targets) != 1 or _IDS.match(str(targets[0]).strip()) or str(targets[0]).startswith("prompt:"):
        return False
    try:
        get_experiment(library, str(targets[0]).removeprefix("experiment:"))
    except NotFound:
        return False
    return True


# -- beside the person's votes -------------------------------------------------------------


def experiment_judges(library: Library, name: str) -> list[dict[str, Any]]:
    """For each judge whose scores an experiment's images have: agreement with the person's votes
    (Wilson) and stars (Kendall's tau), the judge's own verdict per pair and the prediction-powered
    verdict beside the human-only one. [] when nothing is scored.

    :param name: the experiment's name or id.
    """
    from ..experiments import cells, experiment_votes, get_experiment
    from ..judges.agreement import judge_report

    experiment = get_experiment(library, name)
    rows = library.experiment_scores(experiment["id"])
    if not rows:
        return []
    cell_map = cells(library, experiment)
    cell_of = {gen["id"]: key for key, gen in cell_map.items()}
    by_judge: dict[tuple[str, str], dict] = {}
    for row in rows:
        if row["generation_id"] in cell_of:
            by_judge.setdefault((row["judge"], row["judge_model"]), {})[cell_of[row["generation_id"]]] = row["value"]
    stars = {cell_of[g]: float(s) for g, s in library.current_ratings(list(cell_of)).items()}
    votes = experiment_votes(library, experiment)
    labels = [v["label"] for v in experiment["variants"]]
    return [{"judge": judge, "model": model,
             **judge_report(labels, experiment["seeds"], votes, stars, scores)}
            for (judge, model), scores in by_judge.items()]


def attach_scores(library: Library, generations: list[dict[str, Any]]) -> None:
    """Add each generation's stored scores to it as `scores`: [{judge, judge_model, value, ...}]."""
    found = library.generation_scores([g["id"] for g in generations])
    for g in generations:
        g["scores"] = found.get(g["id"], [])


def judges_lines(judges: list[dict[str, Any]]) -> list[str]:
    """The `judges` section of `ab stats` as text lines."""
    lines = []
    for j in judges:
        agreement, stars = j["agreement"], j["stars"]
        lines.append(f"  judge {j['judge']} ({j['model']}): {j['images_scored']} images scored")
        if agreement["votes"]:
            lines.append(f"    agrees with your decided votes {agreement['agree']}/{agreement['votes']} "
                         f"({agreement['share']:.0%}, Wilson 95% CI {agreement['ci_low']:.0%}–{agreement['ci_high']:.0%})")
        else:
            lines.append("    agreement with your votes: no decided votes on scored images yet")
        if stars["tau"] is not None:
            lines.append(f"    Kendall's tau with your stars: {stars['tau']:+.2f} over {stars['images']} images "
                         f"(p = {stars['p_value']:.3g})")
        for p in j["pairs"]:
            mv, ppi_, human = p["machine_verdict"], p["prediction_powered"], p["human_only"]
            equal = f", neither on {mv['ties']}" if mv["ties"] else ""
            lines.append(f"    {p['a']} vs {p['b']}: machine verdict (the judge's, not yours): prefers {p['b']} on "
                         f"{mv['wins_b']}, {p['a']} on {mv['wins_a']}{equal} of {mv['wins_a'] + mv['wins_b'] + mv['ties']} "
                         "seeds")
            lines.append(f"      {_interval_text('prediction-powered', ppi_, p['b'])} — rests on "
                         f"{ppi_['votes_used']} of your votes and {ppi_['pairs_judged']} judged pairs")
            lines.append(f"      {_interval_text('your votes alone', human, p['b'])} — rests on {human['n']} votes")
    return lines


def _interval_text(name: str, result: dict[str, Any], b: str) -> str:
    if result["estimate"] is None:
        return f"{name}: needs at least 2 of your decided votes on this pair"
    return (f"{name}: {b} win rate {result['estimate']:.0%} (95% CI {result['ci_low']:.0%}–"
            f"{result['ci_high']:.0%})")
