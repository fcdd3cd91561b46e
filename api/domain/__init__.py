"""Domain services: the rules of the consular back office, over SQLAlchemy Core connections."""
