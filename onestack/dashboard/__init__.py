"""The dashboard: a web console at /dashboard (Horizon's job), a thin backend-for-frontend
that talks to every service through its public API with the logged-in user's token."""
