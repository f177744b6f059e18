"""The training CLI: python -m train <preset> [key=value ...]."""
