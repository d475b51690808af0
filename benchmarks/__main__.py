"""``python -m benchmarks``: shredstore against eventsourcing + AESCipher and raw SQLAlchemy.

See `benchmarks.compare` for what is measured and the options.
"""

import sys

from benchmarks.compare import main

sys.exit(main())
