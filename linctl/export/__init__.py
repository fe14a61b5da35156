"""`linctl compile`: ahead-of-time packages of a config's model (torch.export, AOTInductor)."""
