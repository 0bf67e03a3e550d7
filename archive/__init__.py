"""Imaging Commons Archive: DICOMweb + DIMSE archive core."""

__version__ = "0.1.0"
