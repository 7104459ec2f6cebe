"""The CLI's exit codes (a contract, docs/cli.md): 0 done, 2 something the user can fix, 1 anything
else, 130 interrupted. The core's errors say what went wrong; this module says what code that is."""

from app.core.domain.errors import Cancelled, IntegrityError, KeelError

DONE = 0
USER_FIXABLE = 2
FAILED = 1
INTERRUPTED = 130


class CommandError(KeelError):
    """A failure a command reports with an exit code of its own choosing."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def exit_code_for(exc: BaseException) -> int:
    if isinstance(exc, CommandError):
        return exc.exit_code
    if isinstance(exc, Cancelled):
        return INTERRUPTED
    if isinstance(exc, IntegrityError):  # a model file that fails its check is not the user's to fix
        return FAILED
    if isinstance(exc, KeelError):
        return USER_FIXABLE
    return FAILED
