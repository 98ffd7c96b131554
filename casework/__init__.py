"""casework package."""
