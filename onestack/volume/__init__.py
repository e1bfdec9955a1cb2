"""Block Storage (Cinder v3)."""
