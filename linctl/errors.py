"""The errors linctl expects: each one is a one-line message for the user, never a traceback."""


class LinctlError(Exception):
    """An expected failure; the message names the file/field/line, the bad value and what is allowed."""


class ConfigError(LinctlError):
    """A configuration or option value is invalid."""


class InputError(LinctlError):
    """An input file or folder is missing, empty or malformed."""


class OutputError(LinctlError):
    """An output folder cannot be written as asked (e.g. it holds results made with other options)."""


class DownloadError(LinctlError):
    """A file could not be fetched, or what was fetched is not the published file."""


class RankFailed(Exception):
    """A process of a torchrun job died or failed, and torchrun stopped the others: exit code 1, not the
    user's input. The message is empty when the processes said why themselves: bad input (exit 2), or
    Ctrl-C and SIGTERM passed on to them (130, 143)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
