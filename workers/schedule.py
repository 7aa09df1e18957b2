"""The Procfile's `scheduler` process: `python workers/schedule.py`.

A script, not a package: the scheduler is tally.workers.schedule, installed with tally (this
folder is not installed, so nothing named `workers` lands in site-packages).
"""
import sys

from tally.workers.schedule import main

if __name__ == "__main__":
    sys.exit(main())
