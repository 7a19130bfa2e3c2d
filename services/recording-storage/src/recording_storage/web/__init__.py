"""Web pages of recording-storage: the recordings list, the player and the upload statistics."""
