"""Benchmark scripts (not installed); a package so that one script can import another's helpers."""
