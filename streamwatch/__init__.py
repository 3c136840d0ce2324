"""Shared building blocks for Streamwatch's services.

Nothing in here starts a service of its own: the simulator, the monitors, the incident detector and the
dashboard import what they need from these small modules, so each concern is written once.
"""
