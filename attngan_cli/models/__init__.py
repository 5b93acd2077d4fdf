"""Neural network modules: the DAMSM encoders and the AttnGAN generator/discriminators."""
