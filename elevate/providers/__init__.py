"""Where access is granted: the interface (base), IAM Identity Center, plain IAM, their catalogs,
the AWS helpers, and the factory that picks one."""
