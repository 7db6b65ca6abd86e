"""Offline: motion and speech data generation (real mocap, rendering, the real detector on renders,
simulation) and training of the shipped weights. Never imported by the node; on top of everything."""
