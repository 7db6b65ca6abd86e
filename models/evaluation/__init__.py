"""Offline: evaluation of the motion model, the finger angles and the lip sync against ground
truth, and the figures the docs link to. Never imported by the node; on top of everything."""
