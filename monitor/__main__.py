"""``python -m monitor`` behaves like the ``dli-monitor`` command."""

from monitor.cli import main

raise SystemExit(main())
