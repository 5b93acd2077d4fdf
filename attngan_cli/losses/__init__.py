"""Loss functions shared by the architectures: DAMSM, adversarial primitives, colour consistency."""
