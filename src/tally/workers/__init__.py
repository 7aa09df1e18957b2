"""tally's background processes: RQ job entry points, the worker and the periodic scheduler."""
