"""``python -m skuaudit.jobs run JOB_ID``: the worker process ``start_worker`` starts."""

import sys

from skuaudit.jobs.worker import main

raise SystemExit(main(sys.argv[1:]))
