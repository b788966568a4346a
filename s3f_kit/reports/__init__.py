"""Reports from finished runs: checked records, tables, statistics, the paper's claims, figures."""
