"""A tiny Django project showing eventtracking.django (see the README's "Django" section)."""
