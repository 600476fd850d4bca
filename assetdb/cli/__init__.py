"""click commands: parse, call a service, print (a table, or JSON with --json)."""
