"""Inputs: built-in texts and tasks, and readers for user files and GLUE."""
