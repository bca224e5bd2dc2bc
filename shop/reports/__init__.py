"""Revenue reports: raw SQL in `sql/`, run by `queries`, served by `shop.api.reports`."""
