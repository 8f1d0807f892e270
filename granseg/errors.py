"""Exception types. Anything derived from :class:`InputError` is the user's fault and the CLI reports it as a
one-line ``error: ...`` with exit code 2."""


class GransegError(Exception):
    """Base class of every error this package raises on purpose."""


class InputError(GransegError, ValueError):
    """Bad input from the user: a missing or corrupt file, a point outside the image, a value out of range."""


class ImageDecodeError(InputError):
    """An image file that cannot be decoded safely (corrupt, truncated, too large, unsupported)."""


class CheckpointError(InputError):
    """A checkpoint that cannot be loaded: unsafe pickle, wrong family, missing/unexpected keys, wrong shapes."""


class UnknownModelError(InputError):
    """A model name that is neither registered nor a path to a checkpoint."""


class OutputError(InputError):
    """An output that cannot be written: disk full, read-only folder, name too long, a parent that is a file,
    an output that would overwrite the input, two outputs with one name."""
