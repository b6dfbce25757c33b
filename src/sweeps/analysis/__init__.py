"""Analysis of finished runs: checkpoint roles now; peaks, windows, bootstrap CIs in Step 5."""
