"""The CLI commands, one module per family; each `register()`s its parsers and handlers."""
