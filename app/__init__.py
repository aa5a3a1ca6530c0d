"""MMAD Inspector desktop application (a thin Qt layer over :mod:`core`)."""
