"""Figures: the paper's attention figure (:mod:`.attention`), image conversion and grids (:mod:`.grid`),
the DAMSM attention maps of pretraining (:mod:`.damsm_maps`), fonts (:mod:`.fonts`).

Everything here works on CPU tensors / numpy arrays and Pillow images; nothing needs a font file or any
other file from outside the installed packages.
"""
