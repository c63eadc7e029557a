"""The monitoring station's viewers: the console, the browser wall, the notebook helpers."""
