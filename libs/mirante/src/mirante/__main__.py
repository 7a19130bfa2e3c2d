import sys

from mirante.cli import main

sys.exit(main())
