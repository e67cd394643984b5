"""The desktop window: pywebview (Qt backend on Linux) around the same UI the browser gets."""
