"""attngan: AttnGAN (Xu et al., CVPR 2018) as a modern, practical toolkit."""

__version__ = "0.1.0"
