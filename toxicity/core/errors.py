"""The errors a user can fix: each message names the file, column, row or option, and what to do."""


class DataError(ValueError):
    """Bad input data. The message names the file, the column or row, and what to do."""


class CheckpointError(ValueError):
    """A checkpoint that does not exist, cannot be read safely, or was not written by toxicity.fit."""


class BackboneError(OSError):
    """A backbone that cannot be found, or whose shipped weights are not the published ones."""
