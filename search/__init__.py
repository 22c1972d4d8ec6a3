"""Architecture search over the Refined-ViT space, and the ``refiner-nas`` command line."""
