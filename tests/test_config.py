"""
Tests for L{logsvc.config}: every option's coercion and default, the one
frozen config, and one-line errors that name the option and the value.
"""

from __future__ import annotations

import dataclasses

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from logsvc.config import LogsvcConfig, Options, fieldName, optionNames, parseConfig
from logsvc.ingest.tcp import DEFAULT_MAX_LINE
from logsvc.limits import DEFAULT_IDLE_TIMEOUT
from logsvc.tap import Options as TapOptions
from logsvc.web.guard import DEFAULT_REQUEST_TIMEOUT, DEFAULT_STALL_TIMEOUT
from logsvc.web.ingest import DEFAULT_MAX_BODY
from tests.test_extras import withoutModule


class DefaultsTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        """Without arguments the documented defaults apply, typed: sizes in bytes, durations in seconds."""
        config = parseConfig()
        self.assertEqual(
            config,
            LogsvcConfig(
                tcp="tcp:5140",
                http="tcp:8080",
                db="./logsvc.sqlite3",
                maxLine=64 * 1024,
                maxBody=10 * 1024 * 1024,
                drainTimeout=5.0,
                fsync="normal",
                batchSize=10_000,
                maxPending=200_000,
                searchTimeout=10.0,
                authTimeout=5.0,
                maxFuture=86400.0,
                gelf=None,
                tcpAcked=None,
                otlpGrpc=None,
                udp=None,
                udpAuth=None,
                udpRcvbuf=8 * 1024**2,
                forward=None,
                maxConnections=None,
                idleTimeout=300.0,
                requestTimeout=30.0,
                stallTimeout=60.0,
                tokenFile=None,
                tcpAuth="none",
                retain=None,
                maxDbSize=None,
                minFreeDisk=256 * 1024**2,
                noSearchIndex=False,
                trustedProxies=None,
            ),
        )

    def test_defaultsWrittenOnce(self) -> None:
        """The defaults that code also uses come from the code's constants."""
        config = parseConfig()
        self.assertEqual(
            (config.maxLine, config.maxBody, config.idleTimeout, config.requestTimeout, config.stallTimeout),
            (DEFAULT_MAX_LINE, DEFAULT_MAX_BODY, DEFAULT_IDLE_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, DEFAULT_STALL_TIMEOUT),
        )

    def test_helpShowsDefaultsAsTyped(self) -> None:
        """The help shows sizes in units and says what each value must be."""
        text = str(Options())
        self.assertIn("[default: 64KiB]", text)
        self.assertIn("[default: 10MiB]", text)
        self.assertIn("half of the open-file limit less 128", text)
        self.assertNotIn("..", text)

    def test_frozen(self) -> None:
        """The config cannot be changed, only copied with changes."""
        config = parseConfig()
        self.assertRaises(dataclasses.FrozenInstanceError, setattr, config, "tcp", "tcp:1")
        self.assertEqual(dataclasses.replace(config, tcp="tcp:1").tcp, "tcp:1")

    def test_everyOptionHasAField(self) -> None:
        """Each option is one field of the config (camelCase), and each field an option."""
        options = {fieldName(name) for name in optionNames()}
        self.assertEqual(options, {field.name for field in dataclasses.fields(LogsvcConfig)})
        self.assertEqual(fieldName("max-db-size"), "maxDbSize")
        self.assertEqual(fieldName("tcp"), "tcp")


class CoercionTests(SynchronousTestCase):
    def test_values(self) -> None:
        """Given values are converted: endpoints verbatim, sizes with units, numbers, durations."""
        config = parseConfig(
            "--tcp", "unix:/tmp/logsvc.sock",
            "--http", "tcp:8443:interface=127.0.0.1",
            "--db", "/var/lib/logsvc/db",
            "--max-line", "1MiB",
            "--max-body", "2MB",
            "--drain-timeout", "0.5",
            "--fsync", "full",
            "--batch-size", "500",
            "--max-pending", "1000",
            "--idle-timeout", "5m",
            "--retain", "30d",
            "--max-db-size", "20GB",
            "--max-connections", "50",
            "--no-search-index",
        )  # fmt: skip
        self.assertEqual(config.tcp, "unix:/tmp/logsvc.sock")
        self.assertEqual(config.http, "tcp:8443:interface=127.0.0.1")
        self.assertEqual(config.db, "/var/lib/logsvc/db")
        self.assertEqual((config.maxLine, config.maxBody), (1024**2, 2_000_000))
        self.assertEqual((config.drainTimeout, config.idleTimeout), (0.5, 300.0))
        self.assertEqual(config.fsync, "full")
        self.assertEqual((config.batchSize, config.maxPending), (500, 1000))
        self.assertEqual((config.retain, config.maxDbSize, config.maxConnections), (30 * 86400, 20 * 1000**3, 50))
        self.assertIs(config.noSearchIndex, True)

    def test_zeroDurations(self) -> None:
        """A drain timeout of 0 closes at once; an idle timeout of 0 means never."""
        config = parseConfig("--drain-timeout", "0", "--idle-timeout", "0")
        self.assertEqual((config.drainTimeout, config.idleTimeout), (0.0, 0.0))

    def test_tokenFileMakesTCPAuth(self) -> None:
        """A token file turns on the TCP AUTH line unless --tcp-auth none."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("ingest abc\n")
        self.assertEqual(parseConfig("--token-file", path).tcpAuth, "token")
        self.assertEqual(parseConfig("--token-file", path, "--tcp-auth", "none").tcpAuth, "none")

    def test_listeners(self) -> None:
        """listeners() names every endpoint asked for, optional ones only when given."""
        self.assertEqual(parseConfig().listeners(), [("http", "tcp:8080"), ("tcp", "tcp:5140")])
        config = parseConfig("--gelf", "tcp:12201", "--tcp-acked", "tcp:5141")
        self.assertEqual(
            config.listeners(),
            [("http", "tcp:8080"), ("tcp", "tcp:5140"), ("tcp-acked", "tcp:5141"), ("gelf", "tcp:12201")],
        )


class ErrorTests(SynchronousTestCase):
    def error(self, *argv: str) -> str:
        with self.assertRaises(usage.UsageError) as caught:
            parseConfig(*argv)
        message = str(caught.exception)
        self.assertNotIn("\n", message)
        return message

    def test_namesOptionAndValue(self) -> None:
        """Every bad value is a one-line UsageError starting with the option and the value."""
        cases = [
            ("--max-line", "abc"),
            ("--max-line", "0"),
            ("--max-line", "-5"),
            ("--max-line", "1e400"),
            ("--max-body", "lots"),
            ("--max-body", "0.1"),
            ("--batch-size", "ten"),
            ("--batch-size", "0"),
            ("--max-pending", "-1"),
            ("--max-pending", "1.5"),
            ("--drain-timeout", "soon"),
            ("--drain-timeout", "-1"),
            ("--drain-timeout", "nan"),
            ("--drain-timeout", "inf"),
            ("--fsync", "sometimes"),
            ("--retain", "soon"),
            ("--retain", "0"),
            ("--max-db-size", "big"),
            ("--idle-timeout", "-1"),
            ("--request-timeout", "x"),
            ("--stall-timeout", "x"),
            ("--max-connections", "0"),
            ("--tcp-auth", "maybe"),
            ("--tcp", "5140"),
            ("--gelf", "nonsense:1"),
            ("--tcp-acked", "tcp:99999"),
        ]
        for option, value in cases:
            message = self.error(option, value)
            self.assertTrue(message.startswith(f"{option} {value}: "), message)

    def test_barePort(self) -> None:
        """A bare port or host:port is not an endpoint, and the error says which one was meant."""
        self.assertEqual(self.error("--http", "18080"), "--http 18080: not an endpoint; did you mean tcp:18080?")
        self.assertEqual(
            self.error("--tcp", "127.0.0.1:5140"),
            "--tcp 127.0.0.1:5140: not an endpoint; did you mean tcp:5140:interface=127.0.0.1?",
        )

    def test_missingKeyFile(self) -> None:
        """An ssl: endpoint whose key file is missing fails at parse time, naming the file."""
        message = self.error("--http", "ssl:8443:privateKey=/nonexistent/key.pem")
        self.assertIn("cannot read /nonexistent/key.pem: no such file or directory", message)

    def test_otlpGrpcWithoutExtra(self) -> None:
        """Without grpcio (its import made to fail), --otlp-grpc is a one-line error naming the pip command."""
        withoutModule(self, "grpc")
        message = self.error("--otlp-grpc", "tcp:4317")
        self.assertTrue(message.startswith("--otlp-grpc tcp:4317: OTLP/gRPC needs the extra logsvc[otlp] ("), message)
        self.assertTrue(message.endswith("pip install 'logsvc[otlp]'"), message)

    def test_tcpAuthNeedsTokens(self) -> None:
        """--tcp-auth token without a token file is refused."""
        self.assertEqual(self.error("--tcp-auth", "token"), "--tcp-auth token: needs --token-file")

    def test_badTokenFile(self) -> None:
        """A bad token file names its line, never a token; a missing one is refused too."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("admin topsecret\n")
        message = self.error("--token-file", path)
        self.assertIn("line 1", message)
        self.assertNotIn("topsecret", message)
        self.assertIn("cannot read", self.error("--token-file", path + "-missing"))

    def test_unknownOption(self) -> None:
        """An unknown option is refused with the closest known one."""
        self.assertEqual(
            self.error("--max-conections", "5"), "--max-conections: no such option; did you mean --max-connections?"
        )
        self.assertIn("see twistd logsvc --help", self.error("--colour", "blue"))


class TapTests(SynchronousTestCase):
    def test_usageErrorExits(self) -> None:
        """Under twistd a usage error ends the process with one line, not the whole help."""
        with self.assertRaises(SystemExit) as caught:
            TapOptions().parseOptions(["--http", "18080"])
        self.assertEqual(str(caught.exception), "twistd logsvc: --http 18080: not an endpoint; did you mean tcp:18080?")
