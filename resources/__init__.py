"""Application resources (stylesheet, icons, screenshot), installed with the package."""
