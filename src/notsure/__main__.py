import sys

from notsure.cli.main import main

sys.exit(main())
