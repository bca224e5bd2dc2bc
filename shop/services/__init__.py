"""Use cases. Each owns its transaction through a unit of work and commits once."""
