"""Many runs: the sweep (`s3f-sweep`, `python -m s3f_kit.sweep`), jobs, workers, Ray."""
