"""Placeholder: filled in with the uniform entry point."""
