"""The fan-out container: a long-running WebSocket server. Replicas share no
state; they meet in Redis (pub/sub per room, rate-limit counters, the
persistence stream)."""
