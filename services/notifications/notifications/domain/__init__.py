"""Pure rules of the notifications context: routing, message templates, delivery policy, digests."""
