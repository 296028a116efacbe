"""One router per API surface; ``gateway.app`` includes them all."""
