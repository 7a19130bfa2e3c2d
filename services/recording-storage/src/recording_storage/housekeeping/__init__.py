"""Background work: expiring abandoned upload sessions and deleting recordings past their retention."""
