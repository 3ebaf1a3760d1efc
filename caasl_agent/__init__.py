"""caasl_agent: the CAASL agent on Stable-Baselines3, baselines and the benchmark harness."""
