"""``python -m aerospike_wsgi_session``: the operator's command line."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
