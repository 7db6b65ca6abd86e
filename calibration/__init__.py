"""Calibration: measure the user's camera (and, later, body and face) once, feed the numbers to configs."""
