"""Stage runners named by ``algo.job``: each takes (cfg, run, task) and returns a summary."""
