"""Test support for the suite: the pytest plugin (registered as `mirante`) and its helpers."""
