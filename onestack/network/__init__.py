"""Networking (Neutron v2.0): the API, its agents and the Linux data plane."""
