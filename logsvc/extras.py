# -*- test-case-name: tests.test_extras -*-
"""
Optional dependencies, installed with an extra of the package
(C{pip install 'logsvc[otlp]'}): whether one is importable, and the one
line that says what is missing and how to install it.

The modules that use an optional dependency ask L{Extra.missing} where it
matters (an endpoint's answer, a listener's start, an option's check) and
import the dependency only once it said nothing is missing, so one piece of
code decides for all of them, and a test can take a dependency away in
process (C{sys.modules[name] = None} makes its import fail).
"""

from __future__ import annotations

from importlib import import_module

__all__ = ["LOKI", "OTLP", "OTLP_GRPC", "Extra"]


class Extra:
    """
    An extra of the package and the modules a feature needs from it.

    @ivar name: the extra's name (C{otlp} in C{logsvc[otlp]}).
    @ivar feature: what needs it, as a line names it (C{"OTLP/gRPC"}).
    @ivar modules: the modules that must import.
    """

    def __init__(self, name: str, feature: str, modules: tuple[str, ...]) -> None:
        self.name = name
        self.feature = feature
        self.modules = modules

    def missing(self) -> str | None:
        """
        Import each of the modules (a dictionary lookup once imported).

        @return: L{None} when they all import, else one line naming the
            feature, the import that failed and the command that installs
            the extra.
        """
        for module in self.modules:
            try:
                import_module(module)
            except ImportError as e:
                return f"{self.feature} needs the extra logsvc[{self.name}] ({e}): pip install 'logsvc[{self.name}]'"
        return None


#: OTLP logs over HTTP (C{POST /v1/logs}): the protobuf runtime and the
#: OpenTelemetry bindings.
OTLP = Extra(
    "otlp",
    "OTLP",
    ("google.protobuf.json_format", "opentelemetry.proto.collector.logs.v1.logs_service_pb2"),
)

#: OTLP logs over gRPC (C{--otlp-grpc}): the same, and grpcio with the
#: service's stubs.
OTLP_GRPC = Extra(
    "otlp",
    "OTLP/gRPC",
    (*OTLP.modules, "grpc", "opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc"),
)

#: Loki's protobuf push (C{POST /loki/api/v1/push} with
#: C{application/x-protobuf}): snappy blocks and the protobuf runtime.
LOKI = Extra("loki", "Loki protobuf", ("cramjam", "google.protobuf.message"))
