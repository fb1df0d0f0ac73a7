"""The errors a command reports in one line (utils.cli.run_cli prints them): bad input, a run
that cannot go on, a failed write; and one_line, which makes any text fit such a line."""


class InputError(ValueError):
    """Bad input (arguments, data, files): the message is one line that says what to fix."""


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. a non-finite loss); the message says what happened."""


def one_line(text, limit=120):
    """`text` as it may go into a one-line message whatever bytes it came from: a string read
    from a file, or an exception (its text, an OSError's reason without the file name, or its
    type name when it has no text). Characters that are not printable are escaped as repr
    escapes them (a newline as \\n, an undecodable byte as \\udcff); at most `limit` characters
    (None: all)."""
    if isinstance(text, BaseException):
        error = text
        text = ((error.strerror if isinstance(error, OSError) else None) or str(error).strip()
                or type(error).__name__)
    text = ''.join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
    return text if limit is None or len(text) <= limit else text[:limit - 3] + '...'


class WriteError(TrainingError):
    """A file could not be written (disk full, file too large, no permission); nothing half
    written is left. run_cli adds what to do next: rerun a tool, resume a run."""

    def __init__(self, path, reason):
        super().__init__('cannot write %s (%s): free some space or make the folder writable'
                         % (path, reason))
        self.path, self.reason = path, reason
