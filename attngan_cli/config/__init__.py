"""Configuration: the job and model dataclasses, their strict (de)serialisation and the presets."""
