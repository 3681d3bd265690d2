"""Recurrent-attention agents built on the glimpse core."""
