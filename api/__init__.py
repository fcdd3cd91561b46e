"""The back office and the HTTP face of Diaspora Bot: the composition root."""
