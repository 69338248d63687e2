"""Benchmarks run by ``fedcore bench NAME``; each module measures against a baseline in the same run."""
