"""MirrorGAN (Qiao et al., CVPR 2019): GLAM (word and sentence attention) and the STREAM re-description loss."""
