"""AuroraChat's shared package: one module per concept, used by every function,
the fan-out container, the local emulator and the tests."""
