"""The `knnclip` command line."""
