"""Self-describing checkpoints and run directories."""
