"""Subcommand groups of the ``switchyard`` command that live in their own modules.

Each module has ``register(subparsers, common_parent, cluster_parent)``; its parsers
carry ``func=<callable(namespace) -> exit code>`` (see ``switchyard.cli.COMMAND_MODULES``).
"""
