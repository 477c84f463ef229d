"""Seeing the agent and its learning."""
