"""Automatic judges: CLIP score against transformers, FID, agreement against scipy, stored scores,
the machine kept out of the human verdict, and one-line errors that write nothing."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageEnhance

from promptkit.cli import main

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> str:
    """A tiny random-weight CLIP model, written by `promptkit model tiny --kind clip`."""
    folder = tmp_path_factory.mktemp("judges") / "tiny-clip"
    result = CliRunner().invoke(main, ["model", "tiny", str(folder), "--kind", "clip", "--json"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["kind"] == "clip"
    return str(folder)


def noise_images(count, size=32, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(count)]


def score_rows(db):
    import sqlite3

    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM scores").fetchone()[0]


# -- the numbers ------------------------------------------------------------------------------


def test_clip_score_equals_a_direct_transformers_computation(tiny_clip):
    import torch
    from transformers import CLIPModel, CLIPProcessor

    from promptkit.judges.clip import ClipScorer

    images, prompts = noise_images(3, 40), ["a lighthouse", "a fox in the snow", "watercolor, 8k"]
    model, processor = CLIPModel.from_pretrained(tiny_clip).eval(), CLIPProcessor.from_pretrained(tiny_clip)
    inputs = processor(text=prompts, images=images, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model(**inputs)
    image = out.image_embeds / out.image_embeds.norm(dim=-1, keepdim=True)
    text = out.text_embeds / out.text_embeds.norm(dim=-1, keepdim=True)
    cosine = (image * text).sum(-1)
    expected_clip = (100 * cosine.clamp(min=0)).tolist()
    expected_pick = (model.logit_scale.exp() * cosine).tolist()
    assert ClipScorer(tiny_clip).score(images, prompts) == pytest.approx(expected_clip, abs=1e-4)
    assert ClipScorer(tiny_clip, scale="pickscore").score(images, prompts) == pytest.approx(expected_pick, abs=1e-4)


def test_fid_of_a_set_with_itself_is_zero_and_grows_when_darkened(tiny_clip):
    from promptkit.judges.sets import clip_features, fid, inception_score

    images = noise_images(8, 32, seed=1)
    feature = clip_features(tiny_clip)
    same = fid(images, images, feature=feature)
    darker = fid(images, [ImageEnhance.Brightness(i).enhance(0.6) for i in images], feature=feature)
    darkest = fid(images, [ImageEnhance.Brightness(i).enhance(0.2) for i in images], feature=feature)
    assert same["value"] == pytest.approx(0.0, abs=1e-3)
    assert 1e-3 < darker["value"] < darkest["value"]
    assert same["n"] == 8 and "few hundred" in same["warning"]
    assert inception_score(images, feature=feature)["value"] >= 1.0 - 1e-6


def test_agreement_and_its_interval_equal_scipys():
    from scipy.stats import binomtest, kendalltau

    from promptkit.judges.agreement import star_agreement, vote_agreement

    rng = np.random.default_rng(5)
    seeds = range(40)
    scores = {(label, s): float(rng.normal()) for label in ("A", "B") for s in seeds}
    votes = []
    for s in seeds:
        left, right = ("A", "B") if s % 2 else ("B", "A")
        winner = "tie" if s % 7 == 0 else ("B" if rng.random() < 0.6 else "A")
        votes.append({"seed": s, "left": left, "right": right, "winner": winner})
    result = vote_agreement(votes, scores)
    decided = [v for v in votes if v["winner"] != "tie"]
    agree = sum(scores[(v["winner"], v["seed"])] > scores[({"A": "B", "B": "A"}[v["winner"]], v["seed"])]
                for v in decided)
    ci = binomtest(agree, len(decided)).proportion_ci(method="wilson")
    assert (result["agree"], result["votes"]) == (agree, len(decided))
    assert (result["ci_low"], result["ci_high"]) == pytest.approx((ci.low, ci.high), abs=1e-12)

    stars = {cell: float(rng.integers(1, 6)) for cell in list(scores)[:30]}
    cells = sorted(stars, key=str)
    tau = kendalltau([stars[c] for c in cells], [scores[c] for c in cells])
    assert star_agreement(stars, scores)["tau"] == pytest.approx(tau.statistic, abs=1e-12)
    assert star_agreement(stars, scores)["p_value"] == pytest.approx(tau.pvalue, abs=1e-12)


# -- scoring a library --------------------------------------------------------------------


def test_score_stores_once_and_a_second_run_computes_nothing(experiment_library, tiny_clip, monkeypatch):
    first = json.loads(run("score", "sky", "--judge", "clip", "--model", tiny_clip, "--json").output)
    assert (first["images"], first["computed"], first["reused"]) == (8, 8, 0)
    assert set(first["by_variant"]) == {"plain", "fancy"}
    assert score_rows(experiment_library) == 8

    import promptkit.judges.clip as clip

    def no_model(*args, **kwargs):
        raise AssertionError("a second run must not load the judge")

    with monkeypatch.context() as patch:
        patch.setattr(clip, "ClipScorer", no_model)
        second = json.loads(run("score", "sky", "--judge", "clip", "--model", tiny_clip, "--json").output)
    assert (second["computed"], second["reused"]) == (0, 8)
    assert second["scores"] == first["scores"]
    forced = json.loads(run("score", "sky", "--judge", "clip", "--model", tiny_clip, "--force", "--json").output)
    assert forced["computed"] == 8 and score_rows(experiment_library) == 8
    # the same images through a prompt and through generation ids: already scored
    ids = ",".join(str(s["generation_id"]) for s in first["scores"][:2])
    assert json.loads(run("score", ids, "--judge", "clip", "--model", tiny_clip, "--json").output)["computed"] == 0
    text = run("score", "sky-plain", "--judge", "pickscore", "--model", tiny_clip).output
    assert "6 images, 6 computed" in text  # sky-plain is also "warm" in the trio experiment


def test_scores_show_in_show_and_ab_stats_beside_never_inside_the_verdict(experiment_library, tiny_clip):
    for seed, winner in ((1, "fancy"), (2, "fancy"), (3, "plain"), (4, "fancy")):
        assert run("ab", "vote", "sky", "--seed", str(seed), "--winner", winner).exit_code == 0
    before = json.loads(run("ab", "stats", "sky", "--json").output)
    assert before["judges"] == []
    run("score", "sky", "--judge", "clip", "--model", tiny_clip)
    after = json.loads(run("ab", "stats", "sky", "--json").output)
    assert {k: v for k, v in after.items() if k != "judges"} == {k: v for k, v in before.items() if k != "judges"}
    (judge,) = after["judges"]
    assert judge["judge"] == "clip" and judge["images_scored"] == 8
    assert judge["agreement"]["votes"] + judge["agreement"]["judge_ties"] == 4
    (pair,) = judge["pairs"]
    assert pair["prediction_powered"]["votes_used"] == 4 and pair["human_only"]["n"] == 4
    assert pair["machine_verdict"]["label"].startswith("machine verdict")
    text = run("ab", "stats", "sky").output
    assert "machine verdict (the judge's, not yours)" in text and "prediction-powered" in text
    assert "your votes alone" in text
    shown = run("show", "sky-plain").output
    assert "scores: clip" in shown
    data = json.loads(run("show", "sky-plain", "--json").output)
    assert data["generations"][0]["scores"][0]["judge"] == "clip"


def test_fid_between_variants_and_against_a_reference(experiment_library, tiny_clip, tmp_path):
    result = json.loads(run("score", "trio", "--judge", "fid", "--model", tiny_clip, "--json").output)
    assert [(s["against"], s["set"]) for s in result["sets"]] == [("warm", "cool"), ("warm", "mono"), ("cool", "mono")]
    reference = tmp_path / "reference"
    reference.mkdir()
    for i, image in enumerate(noise_images(3, 64)):
        image.save(reference / f"{i}.png")
    text = run("score", "sky", "--judge", "fid", "--model", tiny_clip, "--reference", str(reference)).output
    assert "plain vs reference" in text and "(N = 4)" in text and "warning" in text
    assert score_rows(experiment_library) == 0  # set measures are printed, not stored


def test_deleting_an_experiment_deletes_its_scores(experiment_library, tiny_clip):
    run("score", "sky", "--judge", "clip", "--model", tiny_clip)
    assert run("ab", "delete", "sky", "--with-images").exit_code == 0
    assert score_rows(experiment_library) == 0


def test_judges_lists_each_with_what_it_needs():
    rows = {j["name"]: j for j in json.loads(run("judges", "--json").output)}
    assert set(rows) >= {"clip", "pickscore", "hps", "fid", "is"}
    assert rows["clip"]["default_model"] == "openai/clip-vit-large-patch14"
    assert rows["pickscore"]["processor"] == "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
    assert rows["hps"]["available"] is False and rows["hps"]["reason"]
    assert "PickScore" in run("judges").output


# -- bad input: one line each, nothing written --------------------------------------------


def one_line_error(args, db):
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert score_rows(db) == 0
    return lines[0]


def test_bad_input_one_line_each_nothing_written(experiment_library, tiny_clip, tiny_model, monkeypatch, tmp_path):
    assert "unknown judge 'vibes' for --judge" in one_line_error(
        ["score", "sky", "--judge", "vibes"], experiment_library)
    assert "is not a CLIP model" in one_line_error(
        ["score", "sky", "--judge", "clip", "--model", tiny_model], experiment_library)
    assert "needs at least 2 images" in one_line_error(
        ["score", "1", "--judge", "fid", "--model", tiny_clip, "--reference", str(tmp_path)], experiment_library)
    reference = tmp_path / "ref"
    reference.mkdir()
    for i, image in enumerate(noise_images(2)):
        image.save(reference / f"{i}.png")
    assert "needs at least 2 images per set" in one_line_error(
        ["score", "1", "--judge", "fid", "--model", tiny_clip, "--reference", str(reference)], experiment_library)
    assert "needs --reference DIR" in one_line_error(
        ["score", "sky-plain", "--judge", "fid", "--model", tiny_clip], experiment_library)
    assert "not an experiment, a prompt or generation ids" in one_line_error(
        ["score", "nothing-here", "--judge", "clip", "--model", tiny_clip], experiment_library)
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "torch_fidelity", None)
        assert "needs torch-fidelity" in one_line_error(["score", "sky", "--judge", "fid"], experiment_library)
    monkeypatch.setitem(sys.modules, "torchmetrics", None)  # the optional extra missing
    assert "promptkit[judges]" in one_line_error(["score", "sky", "--judge", "fid"], experiment_library)
    assert "promptkit[judges]" in one_line_error(["score", "sky", "--judge", "is"], experiment_library)


# -- the results page and the GPU benchmark -------------------------------------------------


def test_results_page_and_api_show_each_judges_agreement(experiment_library, tiny_clip):
    from fastapi.testclient import TestClient

    from promptkit.web import create_app

    for seed, winner in ((1, "fancy"), (2, "plain"), (3, "fancy")):
        run("ab", "vote", "sky", "--seed", str(seed), "--winner", winner)
    origin = "http://127.0.0.1:8765"
    with TestClient(create_app(experiment_library), base_url=origin) as http:
        assert 'aria-label="Judges"' not in http.get("/experiments/sky").text  # nothing scored: no section
        run("score", "sky", "--judge", "clip", "--model", tiny_clip)
        page = http.get("/experiments/sky").text
        api = http.get("/api/experiments/sky/stats").json()
    assert 'aria-label="Judges"' in page and 'data-judge="clip"' in page
    assert "Agrees with your decided votes" in page or "No decided votes on scored images" in page
    assert "Machine verdict (the judge's, not yours)" in page and "Your votes alone" in page
    assert api["judges"][0]["judge"] == "clip" and api["judges"][0]["pairs"][0]["human_only"]["n"] <= 3


def test_throughput_benchmark_skips_without_a_gpu(monkeypatch, capsys):
    import torch

    from benchmarks import judges_throughput

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(sys, "argv", ["judges_throughput.py"])
    judges_throughput.main()
    assert capsys.readouterr().out.strip() == "skipped: no GPU"


def test_targets_and_a_changed_judge_model(experiment_library, tmp_path):
    from promptkit.judges.tiny import write_tiny_clip
    from promptkit.library import Library
    from promptkit.service.scores import resolve_target, score

    with Library(experiment_library) as lib:
        sky = resolve_target(lib, "sky")
        assert len(sky["generations"]) == 8 and sky["experiment"]["name"] == "sky"
        by_id = resolve_target(lib, f"experiment:{sky['experiment']['id']}")
        assert [g["id"] for g in by_id["generations"]] == [g["id"] for g in sky["generations"]]
        plain = lib.get_prompt("sky-plain")["id"]
        assert {g["prompt_id"] for g in resolve_target(lib, f"prompt:{plain}")["generations"]} == {plain}
        first, last = sky["generations"][0]["id"], sky["generations"][2]["id"]
        assert len(resolve_target(lib, f"{first}-{last}")["generations"]) == last - first + 1
        model = str(write_tiny_clip(tmp_path / "judge", seed=0))
        assert score(lib, "sky", "clip", model=model)["computed"] == 8
        write_tiny_clip(model, seed=1)  # other weights at the same path: the stored scores are stale
        again = score(lib, "sky", "clip", model=model)
        assert again["computed"] == 8 and again["model_hash"]
