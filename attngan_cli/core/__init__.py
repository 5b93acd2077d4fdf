"""Infrastructure every layer uses: errors, atomic file IO, progress protocol, devices and precision, torchrun helpers."""
