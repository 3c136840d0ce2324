"""Evaluation core: NAB-layout input, window-level precision/recall/F1 and NAB scoring (plain functions)."""
