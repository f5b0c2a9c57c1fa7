"""The one error type a user sees: a single line naming the problem and the fix."""


class LabError(ValueError):
    """Bad input from the user (a path, a dataset, a config, a checkpoint).

    The CLI prints these as one line on stderr; anything else is a bug and keeps its traceback.
    """
