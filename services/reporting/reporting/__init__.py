"""KKMP reporting: read models built from every event, cooperative health, monthly reports, exports."""
