"""KKMP sourcing: suppliers, needs (kebutuhan/kendala), supplier matching, redistribution, orders."""
