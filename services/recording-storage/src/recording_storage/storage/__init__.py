"""Where upload bytes and finished recordings are kept: one interface, a local-disk backend."""
