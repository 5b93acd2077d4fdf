"""Networks shared by the architectures: the DAMSM encoders, attention, blocks and the STREAM captioner."""
