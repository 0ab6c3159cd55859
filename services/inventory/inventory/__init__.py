"""KKMP inventory: the commodity catalogue, each cooperative's stock ledger, and stock detection."""
