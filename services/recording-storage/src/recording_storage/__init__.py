"""recording-storage: Receives large session recordings from desktop clients, resumably."""
