"""(placeholder until its issue lands) CLI commands."""


def register(sub) -> None:
    """Add this module's subcommands to the `knnclip` parser."""
