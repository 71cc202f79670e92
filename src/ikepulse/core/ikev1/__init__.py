"""IKEv1 (RFC 2409) beside IKEv2: ISAKMP SAs whose exchanges feed the same CHILD SA, liveness
and renewal parts as an IKEv2 SA."""
