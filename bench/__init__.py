"""Benchmark tools: the load generator, the stack it starts, its reports, the GLM-OCR SDK peer and the soak run."""
