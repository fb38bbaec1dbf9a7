"""Scoring-time checks and outputs for a trained churn model."""
