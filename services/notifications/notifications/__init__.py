"""KKMP notifications: who hears about which event, on which channel (inbox, email, webhook), once."""
