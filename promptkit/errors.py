"""The exceptions promptkit raises; the CLI turns each into one line."""

from __future__ import annotations

import re
from collections.abc import Mapping

# How messages name a parameter of the Python API: in backticks (`batch_size`).
PARAMETER_NAME = re.compile(r"`([a-z_]+)`")


class PromptkitError(Exception):
    """Base class: a problem the user can fix, described in one line."""


class TemplateProblem(PromptkitError):
    """A template could not be found, parsed or rendered safely."""


class UnknownPreset(PromptkitError):
    """A preset name that is not in any preset file."""


class BadParameter(PromptkitError):
    """A generation parameter outside its allowed range."""


class ModelProblem(PromptkitError):
    """A model that cannot be found or is refused."""


class NotFound(PromptkitError):
    """A prompt, generation or other row that does not exist."""


class LibraryProblem(PromptkitError):
    """The library file cannot be opened or written."""


def rename_parameters(message: str, names: Mapping[str, str]) -> str:
    """MESSAGE with each backticked parameter name found in NAMES replaced by what a face calls it (the
    CLI's flag, the page's field label); other backticked names stay as they are."""
    return PARAMETER_NAME.sub(lambda m: names.get(m[1], m[0]), message)
