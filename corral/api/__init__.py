"""The HTTP surface: native API v1, agent channel, events, operations endpoints."""
