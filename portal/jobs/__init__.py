"""Training jobs: submission and the status state machine (all transitions in services.py)."""
