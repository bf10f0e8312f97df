"""Ingestion stage: synthetic CDR generator, seeding, and the Flask streaming simulator."""
