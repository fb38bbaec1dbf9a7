"""churnlens: predict customer churn, explain it, and turn it into a budgeted retention list."""

__version__ = "0.1.0"
