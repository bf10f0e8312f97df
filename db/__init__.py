"""Database layer: migrations, connections and every SQL statement of the project."""
