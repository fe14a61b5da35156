"""Device selection and precision: the only place that touches devices."""
