"""The admin HTTP listener's parts: JSON views of live state and the supervisor page."""
