"""``python -m node.processnode``: run the process node (see :mod:`node.processnode.main`)."""

from node.processnode.main import main

raise SystemExit(main())
