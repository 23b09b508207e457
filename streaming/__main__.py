from __future__ import annotations

from streaming.cli import main

raise SystemExit(main())
