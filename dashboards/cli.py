"""(placeholder until the dashboard lands) CLI commands."""


def register(sub) -> None:
    """Add this module's subcommands to the `knnclip` parser."""
