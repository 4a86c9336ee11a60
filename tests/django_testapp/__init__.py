"""A Django app for the eventtracking.django tests: views, URLs, a model and an events.py."""
