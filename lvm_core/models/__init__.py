"""Models, one module per family; each module docstring states its math."""
