"""``python -m mribench`` (also what ``torchrun -m mribench`` runs)."""

from __future__ import annotations

from mribench.cli import main

if __name__ == "__main__":
    main()
