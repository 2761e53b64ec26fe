"""The `elevate` command line: service commands (main), people's commands, policy as code."""
