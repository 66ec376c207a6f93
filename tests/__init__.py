"""logsvc's trial tests; the layout mirrors the package."""
