"""Data: ingest parsing, prepare and feature encoding."""
