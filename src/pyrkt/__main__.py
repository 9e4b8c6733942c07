"""`python -m pyrkt` is the same as the `pyrkt` command."""

from pyrkt.cli.main import main

raise SystemExit(main())
