"""`python -m deploy up|status|down`: `knnclip stack` before the entry point is installed."""
import sys

from deploy.cli import main

sys.exit(main())
