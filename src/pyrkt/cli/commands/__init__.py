"""One module per verb. Each has SUMMARY-free metadata (``USAGE``, ``FLAGS``) and
``run(ctx, args) -> int``; main.py imports only the one chosen."""
