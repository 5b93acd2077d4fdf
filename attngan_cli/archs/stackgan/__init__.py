"""StackGAN (Zhang et al., ICCV 2017) and StackGAN++ (TPAMI 2018)."""
