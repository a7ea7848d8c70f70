"""Media files by their content: probing (kind, size, duration, audio) and conforming images to a model's rules."""
