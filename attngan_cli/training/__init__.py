"""Training loops: DAMSM pretraining and GAN training."""
