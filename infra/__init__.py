"""How medvault's parts are built and wired: settings, database, migrations, runtime, CLI.

Settings are read here, once, and passed down as arguments; ``vault`` and ``keys`` never read
the environment. ``infra`` never imports ``api`` or ``workers``.
"""
