"""The conversations, pure: message keys and choices out, no I/O, no clock of their own."""
