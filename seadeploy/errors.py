"""Exceptions raised by seadeploy.

Every message says what is wrong and how to fix it. The command line turns them into exit codes
(see :mod:`seadeploy.cli`): ``ConfigError``/``InputError`` → 2, ``ParityFailure`` → 1,
``BackendUnavailable`` → 3.
"""

from __future__ import annotations


class SeadeployError(Exception):
    """Base class of every error seadeploy raises on purpose."""

    exit_code = 2


class ConfigError(SeadeployError, ValueError):
    """A name, option or combination of options is not valid (unknown model, tile < 1, ...)."""

    exit_code = 2


class InputError(SeadeployError, ValueError):
    """A file or tensor given by the user is missing, corrupt, of the wrong shape or not finite."""

    exit_code = 2


class BackendUnavailable(SeadeployError, RuntimeError):
    """A requested runtime, library or device is not available on this machine."""

    exit_code = 3


class ParityFailure(SeadeployError, AssertionError):
    """A numeric check ran and its numbers are out of tolerance."""

    exit_code = 1


class PartialFailure(ParityFailure):
    """Some outputs failed their check while the others passed and were written; ``result`` is what was written
    (an export's manifest), so the caller can still report it."""

    def __init__(self, message: str, result: object = None) -> None:
        super().__init__(message)
        self.result = result
