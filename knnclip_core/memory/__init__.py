"""The retrieval memory: one LanceDB table per embedder, curated under a budget."""
