"""Many runs: fan-out on local processes or Ray, many seeds, comparisons, sweeps, statistics."""
