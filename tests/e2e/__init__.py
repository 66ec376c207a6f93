"""End-to-end tests: a real ``twistd -n logsvc`` subprocess on loopback ports."""
