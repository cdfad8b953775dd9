"""Subcommands of the `leadscore` CLI that need only the runtime dependencies."""
