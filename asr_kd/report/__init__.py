"""The run report: Table 1, the temperature sweep, plots."""
