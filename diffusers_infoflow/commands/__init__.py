"""Subcommands of the ``infoflow`` console command (see ``diffusers_infoflow.cli``)."""
