"""Configuration: the job and model dataclasses (schema), their checked fields (fields), strict
(de)serialisation (serialize), the presets (presets) and the captioner's configs (captioner)."""
