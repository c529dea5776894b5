"""Where data comes from and goes to besides the store: URIs, databases, exports."""
