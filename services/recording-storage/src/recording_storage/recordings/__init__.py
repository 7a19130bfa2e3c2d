"""Finished recordings: find them, read their metadata, stream their video (with Range), delete them."""
