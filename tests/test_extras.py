"""
Tests for L{logsvc.extras}: whether an optional dependency imports, and the
line that says how to install it, with the import made to fail in process.
"""

from __future__ import annotations

import sys

from twisted.trial.unittest import SynchronousTestCase

from logsvc.extras import OTLP, OTLP_GRPC, Extra


def withoutModule(case: SynchronousTestCase, name: str) -> None:
    """
    Make C{import name} fail (as when its package is not installed) until
    C{case} ends: a L{None} in C{sys.modules} halts the import.
    """
    saved = sys.modules.get(name)
    sys.modules[name] = None  # type: ignore[assignment]

    def restore() -> None:
        if saved is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = saved

    case.addCleanup(restore)


class ExtraTests(SynchronousTestCase):
    def test_installed(self) -> None:
        """With the test extras installed, nothing is missing."""
        self.assertIsNone(OTLP.missing())
        self.assertIsNone(OTLP_GRPC.missing())

    def test_missing(self) -> None:
        """A module that does not import gives one line naming the feature, the import and the pip command."""
        withoutModule(self, "grpc")
        self.assertIsNone(OTLP.missing())
        line = OTLP_GRPC.missing()
        assert line is not None
        self.assertTrue(line.startswith("OTLP/gRPC needs the extra logsvc[otlp] ("), line)
        self.assertIn("grpc", line)
        self.assertTrue(line.endswith(": pip install 'logsvc[otlp]'"), line)
        self.assertNotIn("\n", line)

    def test_missingBindings(self) -> None:
        """Both OTLP features need the bindings."""
        withoutModule(self, "opentelemetry.proto.collector.logs.v1.logs_service_pb2")
        for extra in (OTLP, OTLP_GRPC):
            line = extra.missing()
            assert line is not None
            self.assertIn("pip install 'logsvc[otlp]'", line)

    def test_anyExtra(self) -> None:
        """The extra's name is the one in the command."""
        self.assertEqual(
            Extra("loki", "Loki protobuf", ("logsvc_no_such_module",)).missing(),
            "Loki protobuf needs the extra logsvc[loki] (No module named 'logsvc_no_such_module'):"
            " pip install 'logsvc[loki]'",
        )
