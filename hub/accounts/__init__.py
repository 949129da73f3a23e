"""Dashboard accounts: users with argon2 passwords, server-side login sessions, lockout, logout everywhere."""
