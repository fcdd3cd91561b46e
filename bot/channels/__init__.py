"""Channels: each turns a provider's raw payloads into neutral messages and back."""
