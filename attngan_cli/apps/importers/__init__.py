"""Importers of the released checkpoints of the official codes, one module per system."""
