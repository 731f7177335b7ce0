"""``python -m lrjax``: the same command line as the ``lrjax`` console script."""

import sys

from lrjax._cli import main

if __name__ == "__main__":
    sys.exit(main())
