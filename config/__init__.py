"""The one settings object and the validated JSON run configurations."""
