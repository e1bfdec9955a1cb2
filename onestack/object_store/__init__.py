"""The object store (Swift v1): a proxy over replicated storage devices placed by a ring."""
