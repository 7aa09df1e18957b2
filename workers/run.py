"""The Procfile's `worker` process: `python workers/run.py [--burst] [queue ...]`.

A script, not a package: the worker is tally.workers.run, installed with tally (this folder is
not installed, so nothing named `workers` lands in site-packages).
"""
import sys

from tally.workers.run import main

if __name__ == "__main__":
    sys.exit(main())
