"""`python -m s3f_kit.sweep`: the sweep's command line (s3f_kit.sweep.sweep, `s3f-sweep`)."""

import sys

from s3f_kit.sweep.sweep import main

sys.exit(main())
