"""Server-rendered pages (admin; account pages later)."""
