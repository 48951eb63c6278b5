"""``python -m naming`` runs the ``grpc-naming`` command."""

import sys

from ._cli import main

sys.exit(main())
