"""The alarming service (Aodh v2 API): alarms, their evaluation and their actions."""
