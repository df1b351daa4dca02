"""Load on the suggestion service's HTTP edge: throughput, tail latency, memory under big bodies."""
