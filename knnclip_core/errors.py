"""User-facing errors: each carries one clear sentence that the CLI prints as is."""


class KnnclipError(Exception):
    """Base of errors whose message is meant for the user (no traceback)."""


class InputError(KnnclipError):
    """The input could not be read at all (missing path, unknown format, bad JSON)."""


class ConfigError(InputError):
    """A config file, preset or KNNCLIP_* variable is wrong (named in the message with the key)."""


class WeightsNotFoundError(KnnclipError):
    """Model weights are not available offline."""


class EmbedderMismatchError(KnnclipError):
    """Vectors of one embedder were about to meet vectors or a release of another."""


class VerificationError(KnnclipError):
    """A snapshot or release failed its checksum, manifest or embedder check."""


class BusyError(KnnclipError):
    """Another run holds the lock on the same resource."""
