"""Integrations with third-party libraries, one module each; each imports its library."""
