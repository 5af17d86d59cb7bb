import pytest

from promptkit.errors import BadParameter, ModelProblem
from promptkit.params import SAMPLERS, GenerationParams, canonical_sampler, check_model_ref, parse_seeds


def test_seed_lists_ranges_and_random():
    assert parse_seeds("1-4") == [1, 2, 3, 4]
    assert parse_seeds("5, 1-2,9") == [5, 1, 2, 9]
    drawn = parse_seeds("random:3")
    assert len(drawn) == 3 and all(0 <= s < 2**32 for s in drawn)


@pytest.mark.parametrize("spec,message", [("9-1", "backwards"), ("a", "not a whole number"), ("", "empty"),
                                          ("random:0", "at least 1"), ("99999999999", "outside")])
def test_bad_seeds(spec, message):
    with pytest.raises(BadParameter, match=message):
        parse_seeds(spec)


def test_samplers_are_case_insensitive():
    assert canonical_sampler("euler_a") == "Euler a"
    assert canonical_sampler("dpm++ 2m karras") == "DPM++ 2M Karras"
    assert len(SAMPLERS) == 10
    with pytest.raises(BadParameter, match="unknown sampler 'k_lms2'"):
        canonical_sampler("k_lms2")


@pytest.mark.parametrize("kwargs,message", [({"steps": 0}, "steps"), ({"cfg": -1}, "cfg"),
                                            ({"width": 65}, "multiple of 8 but is 65"),
                                            ({"height": 0}, "height")])
def test_bad_params(kwargs, message):
    with pytest.raises(BadParameter, match=message):
        GenerationParams(**kwargs)


def test_model_refs(tmp_path):
    with pytest.raises(ModelProblem, match="not found"):
        check_model_ref(str(tmp_path / "missing"))
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"x")
    with pytest.raises(ModelProblem, match="pickle.*--allow-pickle"):
        check_model_ref(str(ckpt))
    assert check_model_ref(str(ckpt), allow_pickle=True) == "pickle"
    assert check_model_ref("stable-diffusion-v1-5/stable-diffusion-v1-5") == "hub"
    with pytest.raises(ModelProblem, match="model_index.json"):
        check_model_ref(str(tmp_path))


@pytest.mark.parametrize("typed,expected", [
    ("dpm++2m", "DPM++ 2M"), ("DPM++ 2M", "DPM++ 2M"), ("dpmpp_2m", "DPM++ 2M"), ("dpmpp_2m_karras", "DPM++ 2M Karras"),
    ("DPM-PP-2M-Karras", "DPM++ 2M Karras"), ("dpm++ sde karras", "DPM++ SDE Karras"), ("euler_a", "Euler a"),
    ("Euler A", "Euler a"), ("euler-a", "Euler a"), ("EULER", "Euler"), ("k_euler_a", "Euler a"), ("uni_pc", "UniPC"),
    ("  lms ", "LMS"),
])
def test_sampler_names_are_matched_leniently(typed, expected):
    assert canonical_sampler(typed) == expected


def test_an_unknown_sampler_suggests_the_closest_names_in_one_line():
    with pytest.raises(BadParameter) as caught:
        canonical_sampler("dpm++ 2m karas")
    message = str(caught.value)
    assert "did you mean 'DPM++ 2M Karras'" in message and "\n" not in message
    with pytest.raises(BadParameter, match="did you mean 'Euler a'"):
        canonical_sampler("eular a")
    with pytest.raises(BadParameter) as caught:
        canonical_sampler("zzzzzz")
    assert "did you mean" not in str(caught.value) and "choose one of: DDPM" in str(caught.value)
