"""One run: data → model → train → evaluate, the metrics it measures, and the notebooks."""
