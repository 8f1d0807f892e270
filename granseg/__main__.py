import sys

from granseg.cli import main

sys.exit(main())
