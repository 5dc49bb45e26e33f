"""Plotting: attention-map grids and comparison figures. Functions take data and an optional Axes."""
