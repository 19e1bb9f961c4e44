"""`python -m ash.runtime`: the agent runtime speaking the bridge protocol on stdio."""

from ash.runtime.server import main

raise SystemExit(main())
