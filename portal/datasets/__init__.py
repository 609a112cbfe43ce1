"""Datasets: upload, validation status, storage of the original and canonical files."""
