"""``python -m eventtracking``: the same as the ``eventtracking`` command."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    main()
