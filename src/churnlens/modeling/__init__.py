"""Model training, calibration and evaluation."""
