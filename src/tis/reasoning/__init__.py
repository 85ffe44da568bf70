"""Thought formats (how a model marks its thought), splitting and joining, and model profiles."""
