"""The registry: regions, cooperatives, boards, members, potentials, trainings, users and tokens."""
