import sys

from tis.cli import main

sys.exit(main())
