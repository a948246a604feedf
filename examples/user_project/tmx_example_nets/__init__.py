"""Example in-house models for torchmatrix's "bring your own model" section (plain nn.Modules)."""
