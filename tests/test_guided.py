"""`promptkit build --guided`, driven through a real pseudo-terminal with pexpect."""

import json
import os
import sys

import pexpect
from click.testing import CliRunner

from promptkit.cli import main
from promptkit.library import Library


def test_guided_build_saves_the_answered_prompt(isolated_library):
    env = dict(os.environ, PROMPTKIT_DB=str(isolated_library), COLUMNS="200")
    child = pexpect.spawn(sys.executable, ["-m", "promptkit", "build", "--guided"], env=env, encoding="utf-8",
                          timeout=60, dimensions=(50, 200))
    child.expect("Subject")
    child.sendline("a red fox")
    child.expect("positive .*: a red fox")
    child.expect("Action")
    child.sendline("leaping")
    child.expect("Environment")
    child.sendline("snowy forest")
    child.expect("watercolor")  # presets offered by number with descriptions
    child.expect("Style")
    child.sendline("watercolour")  # a typo is refused and asked again
    child.expect("unknown style preset 'watercolour'")
    child.sendline("1, cinematic")
    child.expect("watercolor painting")
    child.expect("Quality")
    child.sendline("8k")
    child.expect("Negative preset")
    child.sendline("")  # default: standard
    child.expect("Your own negative terms")
    child.sendline("fog")
    child.expect("Save as")
    child.sendline("fox-guided")
    child.expect("saved as prompt 1 \\(fox-guided\\)")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    with Library(isolated_library) as lib:
        prompt = lib.get_prompt("fox-guided")
    assert prompt["fields"]["subject"] == "a red fox"
    assert prompt["fields"]["style"] == ["watercolor", "cinematic"]
    assert prompt["fields"]["quality"] == ["8k"]
    assert prompt["positive"].startswith("a red fox, leaping, snowy forest, watercolor painting")
    assert prompt["negative"].endswith("fog")


def test_guided_without_a_terminal_refuses_in_one_line(isolated_library):
    result = CliRunner().invoke(main, ["build", "--guided"], input="a fox\n")
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0 and "needs a terminal" in result.output
    assert not isolated_library.exists()
