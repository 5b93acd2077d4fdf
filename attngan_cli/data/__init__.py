"""Data preparation and loading: tokenizer, vocabulary, the HDF5 dataset format, sources and the Dataset."""
