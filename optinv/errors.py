"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class OptinvError(Exception):
    """A problem the user can fix (bad file, bad option); its message is the whole story."""


class CheckpointError(OptinvError, ValueError):
    """A model file that cannot be read as any format optinv understands."""


class InputImageError(OptinvError, ValueError):
    """An input image that is missing, unreadable or unusable for the job."""
