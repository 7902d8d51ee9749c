"""GNU Health 5.0 as a second, real web EHR for the tests: start/stop (server), RPC seeding (seed)."""
