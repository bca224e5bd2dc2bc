"""`flask seed-db`: a realistic, deterministic store, written fast with COPY."""
