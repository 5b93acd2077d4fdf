"""Applications over the trained models: sampling, attention figures, the demo, the runs summary, plots and importers of official checkpoints."""
