"""Interactive apps built on the library (imported on demand; each documents its start command)."""
