"""One thin module per CLI command; each parses flags and calls library functions."""
