"""Readers and writers: landmark files, videos, datasets."""
