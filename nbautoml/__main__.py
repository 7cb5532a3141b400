"""``python -m nbautoml``: the headless CLI (:mod:`nbautoml.cli`).

Guarded by ``__name__``: Dask's spawned worker processes re-import ``__main__`` and must not run the CLI again.
"""

from __future__ import annotations

if __name__ == "__main__":
    import sys

    from nbautoml.cli import main

    sys.exit(main())
