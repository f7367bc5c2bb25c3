"""Benchmarks (`make bench-import`). Not part of the installed app."""
