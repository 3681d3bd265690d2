"""``python -m envs.data``: which source each (name, split) resolves to; ``--rebuild-offline`` regenerates the
bundled subset. See :func:`envs.data.main`."""

import sys

from envs.data import main

sys.exit(main())
