"""Trial programs of the example Experiments; each runs in seconds on a CPU (or a GPU)."""
