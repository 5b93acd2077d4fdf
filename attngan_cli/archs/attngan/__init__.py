"""AttnGAN (Xu et al., CVPR 2018): the attentional generative network and its discriminators."""
