"""The embeddings job."""
