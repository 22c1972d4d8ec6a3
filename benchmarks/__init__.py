"""Cost accounting (parameters, MACs, FLOPs) and speed benchmarks for the model family."""
