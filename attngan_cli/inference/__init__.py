"""Trained models rebuilt from their checkpoints, and image generation from captions."""
