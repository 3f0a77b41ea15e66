"""The local emulator: runs AuroraChat's real handlers, the fan-out container,
embedded Redis and MongoDB-protocol servers, and the frontend on one machine,
with no AWS account and no Docker."""
