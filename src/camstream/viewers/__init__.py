"""The monitoring station's viewers: the console monitor and the browser wall."""
