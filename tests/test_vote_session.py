"""`promptkit ab vote` on a terminal: skip shows the next pair, and a skipped pair comes back at the end."""

import re

import pytest
from click.testing import CliRunner

from promptkit.experiments import VariantSpec, create_experiment, run_experiment
from promptkit.cli import main
from promptkit.library import Library
from promptkit.params import GenerationParams
from promptkit.service.experiments import VotingSession, pair_key
from promptkit.templates import Fields, PromptBuilder

SEEDS = [1, 2, 3, 4]


@pytest.fixture
def lib(isolated_library, tiny_engine):
    with Library(isolated_library) as library:
        builder = PromptBuilder()
        for name, style in (("A", "watercolor"), ("B", "cinematic")):
            library.save_prompt(builder.render(Fields(subject="a fox", style=[style])), name=name)
        create_experiment(library, "exp", [VariantSpec("A", "A"), VariantSpec("B", "B")], SEEDS,
                          GenerationParams(steps=2, cfg=6.0, sampler="Euler"))
        run_experiment(library, tiny_engine, "exp", batch_size=4)
        yield library


def _vote(answers: str):
    result = CliRunner().invoke(main, ["ab", "vote", "exp"], input=answers, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return [int(s) for s in re.findall(r"^pair \d+ of \d+ \(seed (\d+)\)", result.output, re.M)], result.output


def test_skip_shows_the_next_pair(lib):
    seeds, output = _vote("s\n1\n2\nq\n")
    assert len(seeds) == 4 and len(set(seeds[:3])) == 3  # s, 1, 2: three different pairs, then q on a fourth
    assert "2 votes recorded" in output


def test_a_skipped_pair_comes_back_at_the_end(lib):
    seeds, output = _vote("s\n1\n1\n1\n2\n")
    assert seeds[4] == seeds[0] and len(set(seeds[:4])) == 4
    assert "4 votes recorded" in output


def test_skipping_every_pair_goes_round_them_in_turn(lib):
    session = VotingSession(lib, "exp")
    shown = []
    for _ in range(2 * len(SEEDS)):
        pair = session.next()
        shown.append(pair_key(pair))
        session.skip(pair)
    assert len(set(shown[:4])) == 4 and shown[4:] == shown[:4]
    voted = session.next()
    session.vote(voted, "tie")
    assert session.cast == 1 and pair_key(session.next()) != pair_key(voted)
