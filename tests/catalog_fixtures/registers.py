"""Imported by the catalog --module test: registers a type on the default tracker."""

from eventtracking.track import get_tracker

get_tracker().register("module.event", "Registered at import.", {"a": "Field a."})
