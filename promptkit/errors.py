"""The exceptions promptkit raises; the CLI turns each into one line."""


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
