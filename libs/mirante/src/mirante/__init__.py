"""Mirante: the library shared by every service of the suite."""
