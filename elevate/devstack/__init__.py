"""The embedded stack of `elevate dev` and the tests: processes, dev keys, demo seeds."""
