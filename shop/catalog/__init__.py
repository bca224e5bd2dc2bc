"""The catalog read side: product documents, list queries, and their Redis cache with invalidation after commit."""
