"""Every side effect of a request's lifecycle: AWS calls and database writes."""
