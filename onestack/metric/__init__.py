"""The metric service (Gnocchi v1 API): an index in the database, time series in a store."""
