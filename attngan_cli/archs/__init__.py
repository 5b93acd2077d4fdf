"""Architectures: one module or folder per text-to-image GAN, resolved by name through :mod:`attngan_cli.archs.registry`."""
